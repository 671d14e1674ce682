//! Streaming queries: `query.yield_per(n).iter()` reads `n` rows at a time through a cursor,
//! so that memory is bounded by the page, not by the result.

use orm_core::{Cursor, Entity, Error, Result};

use crate::handle::Handle;
use crate::query::Eager;
use crate::session::{Session, State, merge};

/// The objects of a query read a page at a time ([`Query::iter`](crate::Query::iter)):
/// an iterator of `Result<Handle<E>>`, or of whole pages with
/// [`next_page`](Self::next_page).
///
/// Each page is read through a cursor (a server-side cursor on PostgreSQL; on SQLite the
/// query's keys, kept in a temporary table, joined page by page) and merged into the
/// identity map as any query's rows are. The session holds the objects weakly, so objects
/// the caller drops are freed: a scan of any size runs in the memory of a page. Between
/// pages the session is free for other calls (changing the objects read, flushing them);
/// a commit or rollback ends the stream, whose next page is then an error, as the
/// transaction's end closes a server-side cursor.
///
/// ```
/// use orm_session::prelude::*;
/// #[derive(Entity, Debug, Clone)]
/// struct Reading { #[orm(primary_key)] id: i64, value: i64 }
/// # fn main() -> orm_session::Result<()> {
/// let engine = Engine::sqlite_memory()?;
/// engine.create_table::<Reading>()?;
/// let s = engine.session();
/// s.bulk_insert_mappings((1..=2500).map(|id| Mapping::from([Reading::ID.to(id), Reading::VALUE.to(id % 7)])), BulkOptions::default())?;
/// let mut total = 0;
/// for r in s.query::<Reading>().filter(Reading::VALUE.eq(3)).yield_per(100).iter()? {
///     total += r?.read()?.value;
/// }
/// assert_eq!(total, 3 * 357);
/// # Ok(()) }
/// ```
#[must_use = "a stream reads nothing until it is iterated"]
pub struct Stream<'s, E: Entity> {
    session: &'s Session,
    cursor: Option<Cursor<E>>,
    page: usize,
    /// The session's transaction epoch when the cursor was opened.
    epoch: u64,
    populate_existing: bool,
    eager: Vec<Eager<'s, E>>,
    buffer: std::vec::IntoIter<Handle<E>>,
    /// An error ended the stream: nothing more is read.
    ended: bool,
}

impl<'s, E: Entity> Stream<'s, E> {
    /// Opens the cursor: autoflush first; on PostgreSQL the session's transaction begins
    /// (a cursor lives in one).
    pub(crate) fn open(
        session: &'s Session,
        spec: &orm_core::SelectSpec,
        page: usize,
        populate_existing: bool,
        eager: Vec<Eager<'s, E>>,
    ) -> Result<Self> {
        let (cursor, epoch) = session.locked(|st, session| {
            if st.autoflushes() {
                session.shared.flush_inner(st)?;
            }
            let conn = st.conn(session.engine())?;
            if conn.has_server_cursors() && !conn.in_transaction() {
                conn.begin()?;
            }
            let cursor = conn.open_cursor::<E>(spec)?;
            st.streams += 1;
            Ok((cursor, st.epoch))
        })?;
        Ok(Stream {
            session,
            cursor: Some(cursor),
            page: page.max(1),
            epoch,
            populate_existing,
            eager,
            buffer: Vec::new().into_iter(),
            ended: false,
        })
    }

    /// Rows read per round trip ([`Query::yield_per`](crate::Query::yield_per)).
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Pet { #[orm(primary_key)] id: i64 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Pet>()?;
    /// let s = engine.session();
    /// assert_eq!(s.query::<Pet>().iter()?.page_size(), orm_session::DEFAULT_PAGE);
    /// # Ok(()) }
    /// ```
    pub fn page_size(&self) -> usize {
        self.page
    }

    /// The next page of objects (up to the page size; a page can be short before the end
    /// when rows were deleted since the stream began), or `None` after the last. Objects
    /// already taken one by one through the iterator are not returned again.
    ///
    /// # Errors
    /// [`Error::InvalidState`] once the session's transaction ended (commit, rollback)
    /// after the stream began; the database's error; [`Error::Conversion`]; the errors of
    /// eager loads. After an error the stream is over.
    ///
    /// ```
    /// use orm_session::prelude::*;
    /// #[derive(Entity, Debug, Clone)]
    /// struct Pet { #[orm(primary_key)] id: i64 }
    /// # fn main() -> orm_session::Result<()> {
    /// let engine = Engine::sqlite_memory()?;
    /// engine.create_table::<Pet>()?;
    /// let s = engine.session();
    /// s.add_all((1..=5).map(|id| Pet { id }))?;
    /// let mut stream = s.query::<Pet>().yield_per(2).iter()?;
    /// let mut sizes = Vec::new();
    /// while let Some(page) = stream.next_page()? {
    ///     sizes.push(page.len());
    /// }
    /// assert_eq!(sizes, [2, 2, 1]);
    /// # Ok(()) }
    /// ```
    pub fn next_page(&mut self) -> Result<Option<Vec<Handle<E>>>> {
        let rest: Vec<Handle<E>> = self.buffer.by_ref().collect();
        if !rest.is_empty() {
            return Ok(Some(rest));
        }
        if self.ended {
            return Ok(None);
        }
        match self.read_page() {
            Ok(Some(page)) => Ok(Some(page)),
            Ok(None) => {
                self.close();
                Ok(None)
            }
            Err(e) => {
                self.ended = true;
                self.close();
                Err(e)
            }
        }
    }

    fn read_page(&mut self) -> Result<Option<Vec<Handle<E>>>> {
        let Some(cursor) = self.cursor.as_mut() else {
            return Ok(None);
        };
        let (epoch, page, populate_existing) = (self.epoch, self.page, self.populate_existing);
        let found = self.session.locked(|st, session| {
            if st.epoch != epoch {
                return Err(Error::InvalidState {
                    message: format!(
                        "the stream of {} (table `{}`) ended: the session's transaction was \
                         committed or rolled back after it began, which closes its cursor; \
                         finish a stream before commit(), or collect the keys first",
                        E::META.name,
                        E::META.table
                    ),
                });
            }
            let (conn, maps) = st.connection_and_maps();
            let Some(conn) = conn else {
                return Err(Error::InvalidState {
                    message: "the stream's connection is gone".into(),
                });
            };
            let map = maps.typed::<E>();
            let joining = crate::handle::Joining::new(&session.shared.tie);
            // A page size is a bound, not a promise: reserve for what comes.
            let mut out = Vec::with_capacity(page.min(4096));
            conn.fetch(cursor, page, |row| {
                out.push(merge(map, row, populate_existing, &joining)?);
                Ok(())
            })?;
            Ok(out)
        })?;
        if found.is_empty() {
            return Ok(None);
        }
        for load in &self.eager {
            load(self.session, &found)?;
        }
        Ok(Some(found))
    }

    /// Closes the cursor and lets the session give its connection back.
    fn close(&mut self) {
        let Some(cursor) = self.cursor.take() else {
            return;
        };
        let epoch = self.epoch;
        let close = move |st: &mut State| {
            st.streams -= 1;
            // A cursor's temporary table (SQLite, MySQL) outlives transactions (dropping one that is
            // gone does nothing); a PostgreSQL cursor ended with its transaction, and asking
            // to close it in another would fail that one.
            if let Some(conn) = st.connection()
                && (st.epoch == epoch || !conn.has_server_cursors())
            {
                // A failure here leaves a temporary table or an open cursor behind, both of
                // which end with the connection or its transaction.
                if let Err(e) = conn.close_cursor(cursor) {
                    tracing::debug!(target: "orm::session", error = %e, "closing a stream's cursor failed");
                }
            }
            st.release_idle();
        };
        self.session.shared.later(Box::new(close));
    }
}

impl<E: Entity> Iterator for Stream<'_, E> {
    type Item = Result<Handle<E>>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(h) = self.buffer.next() {
            return Some(Ok(h));
        }
        match self.next_page() {
            Ok(Some(page)) => {
                self.buffer = page.into_iter();
                self.buffer.next().map(Ok)
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl<E: Entity> Drop for Stream<'_, E> {
    fn drop(&mut self) {
        self.close();
    }
}

impl<E: Entity> std::fmt::Debug for Stream<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("entity", &E::META.name)
            .field("page", &self.page)
            .field("open", &self.cursor.is_some())
            .finish_non_exhaustive()
    }
}
