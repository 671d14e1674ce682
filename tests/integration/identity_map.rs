//! S1 identity, S2 states.

use orm_session::prelude::*;
use orm_tests::SqlLog;
use orm_tests::model::Customer;

// S1
orm_tests::backends! {
fn s1_get_and_query_return_the_same_object_and_second_get_sends_no_sql(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    s.add(Customer::new("ada", 36))?;
    s.commit()?;

    let (log, _g) = SqlLog::start();
    let a = s.get::<Customer>(1)?.expect("row 1");
    let after_first = log.statements().len();
    assert!(
        after_first >= 1,
        "the first get of an expired object reloads it"
    );
    let b = s.get::<Customer>(1)?.expect("row 1");
    assert_eq!(
        log.statements().len(),
        after_first,
        "second get sends no SQL: {:?}",
        log.statements()
    );
    let c = s
        .query::<Customer>()
        .filter(Customer::NAME.eq("ada"))
        .one()?;
    assert!(Handle::ptr_eq(&a, &b) && a == c, "one object per row");
    // Also true for objects loaded first by a query.
    let s2 = engine.session();
    let q = s2.query::<Customer>().all()?;
    log.clear();
    let g = s2.get::<Customer>(1)?.expect("row");
    assert!(log.statements().is_empty(), "{:?}", log.statements());
    assert!(q[0] == g);
    Ok(())
}
}

// S1
orm_tests::backends! {
fn s1_adding_a_second_object_for_a_known_key_is_refused(db) -> Result<()> {
    #[derive(Entity, Debug, Clone)]
    struct Tag {
        #[orm(primary_key)]
        name: String,
    }
    let engine = db.engine();
    engine.create_table::<Tag>()?;
    let s = engine.session();
    s.add(Tag { name: "x".into() })?;
    s.flush()?;
    let err = s.add(Tag { name: "x".into() }).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DuplicateObject);
    assert!(err.to_string().contains("already in this session"), "{err}");
    Ok(())
}
}

// S2
orm_tests::backends! {
fn s2_states_from_transient_to_detached(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = Handle::new(Customer::new("bob", 1));
    assert_eq!(h.state(), ObjectState::Transient);
    s.add_handle(&h)?;
    assert_eq!(h.state(), ObjectState::Pending);
    assert!(s.contains(&h));
    s.flush()?;
    assert_eq!(h.state(), ObjectState::Persistent);
    assert_eq!(h.key(), Some(Key::Int(1)));
    s.delete(&h)?;
    assert_eq!(
        h.state(),
        ObjectState::Persistent,
        "still persistent until flush"
    );
    assert_eq!(s.deleted_objects().len(), 1);
    s.flush()?;
    assert_eq!(h.state(), ObjectState::Deleted);
    s.commit()?;
    assert_eq!(h.state(), ObjectState::Detached);

    let other = s.add(Customer::new("carl", 2))?;
    s.commit()?;
    s.expunge(&other)?;
    assert_eq!(other.state(), ObjectState::Detached);
    assert!(!s.contains(&other));

    let kept = s
        .get::<Customer>(other.id().expect("key"))?
        .expect("its row");
    assert!(
        kept != other,
        "an expunged object is no longer the session's object for its row"
    );
    drop(s);
    assert_eq!(
        kept.state(),
        ObjectState::Detached,
        "end of session detaches"
    );
    Ok(())
}
}

// S2
orm_tests::backends! {
fn s2_a_detached_handle_can_be_added_back(db) -> Result<()> {
    let engine = db.engine();
    let s1 = engine.session();
    let h = s1.add(Customer::new("dora", 3))?;
    s1.commit()?;
    let _ = h.read()?; // load before the session goes
    s1.close()?;
    assert_eq!(h.state(), ObjectState::Detached);
    assert_eq!(
        h.read()?.name,
        "dora",
        "a detached, loaded object stays readable"
    );

    let s2 = engine.session();
    s2.add_handle(&h)?;
    assert_eq!(h.state(), ObjectState::Persistent);
    h.write()?.age = 4;
    s2.commit()?;
    assert_eq!(s2.get::<Customer>(1)?.expect("row").read()?.age, 4);
    Ok(())
}
}

// S2
orm_tests::backends! {
fn s2_an_expired_detached_object_says_why_it_cannot_load(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let h = s.add(Customer::new("eve", 5))?;
    s.commit()?; // expires
    drop(s);
    let err = h.read().map(|_| ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Detached);
    assert!(err.to_string().contains("Customer"), "{err}");
    Ok(())
}
}

// S2
orm_tests::backends! {
fn s2_a_pending_object_of_a_dropped_session_can_be_added_again(db) -> Result<()> {
    let engine = db.engine();
    let h = {
        let s = engine.session();
        s.add(Customer::new("orphan", 1))?
    };
    assert_eq!(
        h.state(),
        ObjectState::Transient,
        "the drop rolled its addition back"
    );
    assert_eq!(h.key(), None);
    let s = engine.session();
    s.add_handle(&h)?;
    assert_eq!(h.state(), ObjectState::Pending);
    s.commit()?;
    assert_eq!(h.key(), Some(Key::Int(1)));
    Ok(())
}
}

// F6: merge copies a detached or foreign object's state onto the session's own object for
// that key (loading it), or adds it when no row has the key.
orm_tests::backends! {
fn f6_merge_brings_detached_state_into_the_session(db) -> Result<()> {
    let engine = db.engine();
    let a = engine.session();
    let h = a.add(Customer::new("ada", 30))?;
    a.commit()?;
    let id = h.read()?.id.unwrap();
    a.close()?;
    h.write()?.age = 31; // changed while detached

    let b = engine.session();
    let mine = b.get::<Customer>(id)?.expect("loaded");
    let merged = b.merge_handle(&h)?;
    assert!(merged == mine, "the session's own object, not the detached one");
    assert!(!Handle::ptr_eq(&merged, &h));
    assert_eq!(merged.read()?.age, 31);
    assert!(b.is_modified(&merged)?);
    // A struct whose key has no row is added; one without a key too.
    let fresh = b.merge(Customer { id: Some(9_000), ..Customer::new("from a cache", 1) })?;
    assert_eq!(fresh.state(), ObjectState::Pending);
    let keyless = b.merge(Customer::new("from a form", 2))?;
    assert_eq!(keyless.state(), ObjectState::Pending);
    b.commit()?;
    let conn = engine.connect()?;
    assert_eq!(conn.find::<Customer>(&id.into())?.unwrap().age, 31);
    assert_eq!(conn.find::<Customer>(&Key::Int(9_000))?.unwrap().name, "from a cache");
    assert_eq!(conn.count::<Customer>(None)?, 3);
    Ok(())
}
}

/// Resident memory of this process in KiB, from /proc (Linux), for the figures only.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

// F7: the identity map holds clean objects weakly: a session that reads many rows page by
// page, dropping each page, does not keep them; objects the caller keeps are still the same
// object for their row (S1). `ORM_F7_ROWS` sets the row count (default 100,000).
orm_tests::backends! {
fn f7_a_session_reading_pages_and_dropping_them_stays_flat(db) -> Result<()> {
    let rows: i64 = std::env::var("ORM_F7_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let engine = db.engine();
    db.connect().insert_many((0..rows).map(|i| Customer::new(&format!("c{i}"), 1)))?;
    let s = engine.session();
    let first = s
        .query::<Customer>()
        .order_by(Customer::ID, Order::Asc)
        .first()?
        .expect("a row");
    let kept = first.clone();
    drop(first);
    let mut peak = 0;
    let start = rss_kib();
    for page in 0..rows / 10_000 {
        let objs = s
            .query::<Customer>()
            .order_by(Customer::ID, Order::Asc)
            .offset(page as u64 * 10_000)
            .limit(10_000)
            .all()?;
        assert_eq!(objs.len(), 10_000);
        if page == 0 {
            assert!(objs[0] == kept, "the kept object is the one a load returns");
        }
        drop(objs);
        assert_eq!(s.identity_len(), 1, "only the kept object is held");
        peak = peak.max(rss_kib());
    }
    eprintln!(
        "F7: read {rows} rows in pages of 10,000: RSS {start} KiB before, peak {peak} KiB (+{} KiB)",
        peak.saturating_sub(start)
    );
    let id = kept.read()?.id.unwrap();
    assert!(s.get::<Customer>(id)?.is_some_and(|h| h == kept));
    Ok(())
}
}

// S1 over many objects: identity holds while the map grows, loses entries (expunged, deleted,
// dropped) and is compacted, with keys of a high-bit pattern beside sequential ones.
orm_tests::backends! {
fn s1_identity_holds_through_removals_and_compaction(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let keys: Vec<i64> = (1..=1500).chain((1..=1500).map(|i| i << 40)).collect();
    let handles = s.add_all(keys.iter().map(|&k| Customer {
        id: Some(k),
        ..Customer::new(&format!("c{k}"), 1)
    }))?;
    s.commit()?;
    // Every third handle is kept; of those, every fifth is expunged and every seventh deleted.
    let mut kept = Vec::new();
    let mut expunged = Vec::new();
    for (i, h) in handles.into_iter().enumerate() {
        if i % 3 != 0 {
            continue;
        }
        if i % 5 == 0 {
            // The key is read first: an expunged object cannot reload its expired values.
            let id = h.read()?.id.expect("a key");
            s.expunge(&h)?;
            expunged.push((id, h));
        } else if i % 7 == 0 {
            s.delete(&h)?;
        } else {
            kept.push(h);
        }
    }
    s.commit()?;
    assert_eq!(s.identity_len(), kept.len(), "only the kept objects are held");
    // Loading everything again (and so growing the map past a compaction) finds the kept
    // objects as they are, and new objects for the others.
    let all = s.query::<Customer>().all()?;
    let deleted = (0..keys.len()).filter(|i| i % 3 == 0 && i % 5 != 0 && i % 7 == 0).count();
    assert_eq!(all.len(), keys.len() - deleted);
    for h in &kept {
        let id = h.read()?.id.expect("a key");
        let again = s.get::<Customer>(id)?.expect("the row");
        assert!(again == *h, "key {id}: the session's own object");
        assert!(all.iter().any(|a| a == h), "key {id}: the query's object is the kept one");
    }
    for (id, h) in &expunged {
        let id = *id;
        let again = s.get::<Customer>(id)?.expect("the row");
        assert!(again != *h, "key {id}: an expunged object is not the session's");
    }
    assert_eq!(s.identity_len(), all.len());
    Ok(())
}
}

// S1 after a commit that deleted objects: those that stay are still found by key (the same
// objects), those deleted are gone, whether the commit removed a few of the map's entries or
// most of them (the map is then rebuilt).
orm_tests::backends! {
fn s1_objects_that_stay_are_found_after_a_commit_deletes_others(db) -> Result<()> {
    let engine = db.engine();
    for deleted in [2usize, 9] {
        let s = engine.session();
        let handles = s.add_all((0..12).map(|i| Customer::new(&format!("c{deleted}-{i}"), i)))?;
        s.commit()?;
        let keys: Vec<i64> = handles
            .iter()
            .map(|h| Ok(h.read()?.id.expect("key")))
            .collect::<Result<_>>()?;
        for h in &handles[..deleted] {
            s.delete(h)?;
        }
        s.commit()?;
        for (i, (h, key)) in handles.iter().zip(&keys).enumerate() {
            let found = s.get::<Customer>(*key)?;
            if i < deleted {
                assert!(found.is_none(), "row {key} was deleted");
                assert_eq!(h.state(), ObjectState::Detached);
            } else {
                let found = found.expect("row stays");
                assert!(Handle::ptr_eq(&found, h), "row {key} keeps its object");
                assert_eq!(found.read()?.name, format!("c{deleted}-{i}"));
            }
        }
        // The map still takes new objects and finds them.
        let more = s.add(Customer::new(&format!("more{deleted}"), 1))?;
        s.commit()?;
        let key = more.read()?.id.expect("key");
        assert!(Handle::ptr_eq(&s.get::<Customer>(key)?.expect("new row"), &more));
    }
    Ok(())
}
}

// S1 for keys that came in order (a flush's generated keys, a load in key order), which the
// map finds by their place in a run: the same rows loaded again after their objects went, in
// reverse order and one by one, and new objects that take keys inside that range, each key
// keeping one object, whichever way it is looked up.
orm_tests::backends! {
fn s1_keys_that_came_in_order_keep_one_object_each_when_they_come_again(db) -> Result<()> {
    let engine = db.engine();
    let s = engine.session();
    let handles = s.add_all((0..3000).map(|i| Customer::new(&format!("c{i}"), i)))?;
    s.commit()?;
    let keys: Vec<i64> = handles
        .iter()
        .map(|h| Ok(h.read()?.id.expect("key")))
        .collect::<Result<_>>()?;
    assert!(keys.windows(2).all(|w| w[1] == w[0] + 1), "generated keys in order");
    // Every tenth object is kept; the others go when their handles do.
    let kept: Vec<(i64, Handle<Customer>)> = keys
        .iter()
        .copied()
        .zip(handles)
        .enumerate()
        .filter(|(i, _)| i % 10 == 0)
        .map(|(_, kh)| kh)
        .collect();
    assert_eq!(s.identity_len(), kept.len());
    // Loaded again in reverse: the kept objects come back as they are, the others anew.
    let all = s
        .query::<Customer>()
        .order_by(Customer::ID, Order::Desc)
        .all()?;
    assert_eq!(all.len(), keys.len());
    for (key, h) in &kept {
        let pos = keys.len() - 1 - keys.iter().position(|k| k == key).expect("key");
        assert!(Handle::ptr_eq(&all[pos], h), "key {key}: the kept object");
    }
    // Expunged, then found one by one out of order: a new object each, then that one.
    let block: Vec<i64> = keys[1000..1100].to_vec();
    for key in &block {
        let h = s.get::<Customer>(*key)?.expect("row");
        s.expunge(&h)?;
    }
    let mut again = Vec::new();
    for key in block.iter().rev().step_by(3).chain(block.iter().step_by(2)) {
        let h = s.get::<Customer>(*key)?.expect("row");
        let old = all.iter().find(|a| a.read().is_ok_and(|v| v.id == Some(*key)));
        assert!(old.is_none_or(|o| !Handle::ptr_eq(o, &h)), "key {key}: not the expunged object");
        again.push((*key, h));
    }
    for (key, h) in &again {
        assert!(Handle::ptr_eq(&s.get::<Customer>(*key)?.expect("row"), h), "key {key}");
    }
    // Deleted and added again with the same keys: the new objects are the keys' objects.
    let gone: Vec<i64> = keys[2000..2050].to_vec();
    for key in &gone {
        let h = s.get::<Customer>(*key)?.expect("row");
        s.delete(&h)?;
    }
    s.commit()?;
    let new = s.add_all(gone.iter().map(|&k| Customer {
        id: Some(k),
        ..Customer::new(&format!("new{k}"), 1)
    }))?;
    s.commit()?;
    for (key, h) in gone.iter().zip(&new) {
        let found = s.get::<Customer>(*key)?.expect("the new row");
        assert!(Handle::ptr_eq(&found, h), "key {key}: the new object");
        assert_eq!(found.read()?.name, format!("new{key}"));
    }
    let listed = s.query::<Customer>().all()?;
    for (key, h) in gone.iter().zip(&new) {
        let in_query = listed.iter().filter(|l| Handle::ptr_eq(l, h)).count();
        assert_eq!(in_query, 1, "key {key}: the query finds the new object once");
    }
    assert_eq!(s.identity_len(), listed.len());
    Ok(())
}
}

// F7 after a commit: the session's strong hold on what the transaction inserted and what its
// flushes wrote ends with the commit, whatever the order the objects were written in (the
// order they came into the identity map, its reverse, a shuffle), for objects inserted and
// written in the same transaction too, with or without expiry on commit. Every claim ends:
// each object can be written and committed again, and once the caller drops its handles the
// session holds nothing.
orm_tests::backends! {
fn f7_a_commit_keeps_no_hold_on_what_it_inserted_or_wrote(db) -> Result<()> {
    for expire in [true, false] {
        let engine = db.engine().expire_on_commit(expire);
        let s = engine.session();
        let n = 3_000;
        let hs = s.add_all((0..n).map(|i| Customer::new(&format!("c{expire}{i}"), 1)))?;
        s.flush()?;
        // Inserted, then written, in one transaction, in reverse order.
        for h in hs.iter().rev().step_by(2) {
            h.write()?.age = 2;
        }
        s.commit()?;
        let mut order: Vec<usize> = (0..n).collect();
        // A shuffle, in the order the map has them, and in reverse.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for i in (1..n).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(i, usize::try_from(seed % (i as u64 + 1)).unwrap());
        }
        let in_order: Vec<usize> = (0..n).collect();
        let reversed: Vec<usize> = (0..n).rev().collect();
        // In order but for pairs swapped far apart.
        let mut displaced = in_order.clone();
        for i in (0..n - 500).step_by(200) {
            displaced.swap(i, i + 500);
        }
        // What the first commit wrote: age 2 for the odd positions (n is even).
        let mut ages: Vec<i32> = (0..n).map(|i| if i % 2 == 1 { 2 } else { 1 }).collect();
        let orders = [order, in_order, reversed, displaced];
        for (round, order) in orders.into_iter().enumerate() {
            // Each round writes two objects in three: the others are only in the map.
            let age = i32::try_from(round).unwrap() + 10;
            for &i in order.iter().filter(|&&i| i % 3 != round % 3) {
                hs[i].write()?.age = age;
                ages[i] = age;
            }
            s.commit()?;
            if expire {
                assert!(
                    hs.iter().all(Handle::is_expired),
                    "round {round}: every object expired by the commit"
                );
            }
            for (i, h) in hs.iter().enumerate() {
                assert_eq!(h.read()?.age, ages[i], "round {round}, expire {expire}, object {i}");
            }
        }
        let rows = engine.session().query::<Customer>().all()?;
        let mut stored: Vec<(String, i32)> = rows
            .iter()
            .map(|h| h.read().map(|c| (c.name.clone(), c.age)))
            .collect::<Result<_>>()?;
        stored.retain(|(name, _)| name.starts_with(&format!("c{expire}")));
        stored.sort_by_key(|(name, _)| name[format!("c{expire}").len()..].parse::<usize>().unwrap());
        let want: Vec<(String, i32)> =
            (0..n).map(|i| (format!("c{expire}{i}"), ages[i])).collect();
        assert_eq!(stored, want, "expire {expire}: the rows hold every change");
        assert_eq!(s.identity_len(), n, "expire {expire}");
        drop(hs);
        assert_eq!(
            s.identity_len(),
            0,
            "expire {expire}: once the caller lets go, the session holds nothing"
        );
    }
    Ok(())
}
}
