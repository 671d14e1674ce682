//! The query API and its merge into the identity map.

use orm_session::prelude::*;
use orm_tests::model::Customer;

fn seeded(db: &orm_tests::TestDb) -> Result<(Engine, Session)> {
    let engine = db.engine();
    let s = engine.session();
    s.add_all((1..=10).map(|i| Customer {
        description: (i % 3 == 0).then(|| format!("third {i}")),
        ..Customer::new(&format!("c{i:02}"), i)
    }))?;
    s.commit()?;
    Ok((engine, s))
}

fn ages(hs: &[Handle<Customer>]) -> Result<Vec<i32>> {
    hs.iter().map(|h| h.read().map(|c| c.age)).collect()
}

orm_tests::backends! {
fn filters_compose(db) -> Result<()> {
    let (_e, s) = seeded(db)?;
    let q = |f: Filter<Customer>| -> Result<Vec<i32>> {
        ages(
            &s.query::<Customer>()
                .filter(f)
                .order_by(Customer::AGE, Order::Asc)
                .all()?,
        )
    };
    assert_eq!(q(Customer::AGE.eq(3))?, [3]);
    assert_eq!(q(Customer::AGE.ne(3).and(Customer::AGE.le(4)))?, [1, 2, 4]);
    assert_eq!(q(Customer::AGE.lt(2).or(Customer::AGE.gt(9)))?, [1, 10]);
    assert_eq!(q(Customer::AGE.ge(9))?, [9, 10]);
    assert_eq!(q(Customer::NAME.like("c0%"))?, (1..=9).collect::<Vec<_>>());
    assert_eq!(q(Customer::AGE.is_in([2, 4, 99]))?, [2, 4]);
    assert_eq!(
        q(Customer::AGE.is_in(Vec::<i32>::new()))?,
        Vec::<i32>::new()
    );
    assert_eq!(q(Customer::DESCRIPTION.is_null().not())?, [3, 6, 9]);
    assert_eq!(
        q(Customer::DESCRIPTION.is_not_null().and(Customer::AGE.gt(3)))?,
        [6, 9]
    );
    assert_eq!(q(Customer::DESCRIPTION.eq("third 6"))?, [6]);
    assert_eq!(
        q(Customer::AGE.lt(3).or(Customer::AGE.gt(8)).not())?,
        (3..=8).collect::<Vec<_>>()
    );
    Ok(())
}
}

orm_tests::backends! {
fn order_limit_offset_first_one_count(db) -> Result<()> {
    let (_e, s) = seeded(db)?;
    let page = s
        .query::<Customer>()
        .order_by(Customer::AGE, Order::Desc)
        .limit(3)
        .offset(2)
        .all()?;
    assert_eq!(ages(&page)?, [8, 7, 6]);
    let first = s
        .query::<Customer>()
        .order_by(Customer::NAME, Order::Asc)
        .first()?
        .expect("rows");
    assert_eq!(first.read()?.name, "c01");
    assert!(
        s.query::<Customer>()
            .filter(Customer::AGE.gt(100))
            .first()?
            .is_none()
    );
    assert_eq!(
        s.query::<Customer>()
            .filter(Customer::AGE.eq(5))
            .one()?
            .read()?
            .age,
        5
    );
    let err = s.query::<Customer>().one().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MultipleRows);
    let err = s
        .query::<Customer>()
        .filter(Customer::AGE.gt(100))
        .one()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        s.query::<Customer>()
            .filter(Customer::AGE.gt(100))
            .one_or_none()?
            .is_none()
    );
    assert_eq!(
        s.query::<Customer>().filter(Customer::AGE.gt(5)).count()?,
        5
    );
    Ok(())
}
}

orm_tests::backends! {
fn results_keep_unflushed_changes_unless_populate_existing(db) -> Result<()> {
    let (_e, s) = seeded(db)?;
    s.set_autoflush(false);
    let h = s.query::<Customer>().filter(Customer::AGE.eq(1)).one()?;
    h.write()?.name = "changed".into();
    let again = s.query::<Customer>().filter(Customer::AGE.eq(1)).one()?;
    assert!(again == h);
    assert_eq!(again.read()?.name, "changed", "unflushed change kept");
    let populated = s
        .query::<Customer>()
        .filter(Customer::AGE.eq(1))
        .populate_existing()
        .one()?;
    assert!(populated == h);
    assert_eq!(h.read()?.name, "c01", "populate_existing overwrote it");
    assert!(!s.is_modified(&h)?);
    Ok(())
}
}
