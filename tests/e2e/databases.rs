//! mysql, postgresql, mongodb and redis, each checked with its backend's own client: the bundle
//! logs in, writes and reads back; data written survives a StartApp; after removal the same
//! credentials are refused.

use std::path::Path;

use crate::{
    clients::{self, Bundle},
    mask::ensure,
};

/// The locale the manifest asks PostgreSQL for.
pub const POSTGRESQL_LOCALE: &str = "de_DE.UTF-8";

/// Every database works with its bundle: a table (or collection, or key) written and read back.
pub fn works(env: &Bundle, work: &Path) {
    let pg = clients::psql(
        env,
        "CREATE TABLE e2e_notes (note text);\n\
         INSERT INTO e2e_notes VALUES ('written at install');\n\
         SELECT note FROM e2e_notes;\n\
         SELECT datcollate FROM pg_database WHERE datname = current_database();\n",
    );
    ensure(
        pg.ok && pg.out == format!("written at install\n{POSTGRESQL_LOCALE}\n"),
        || format!("psql with CLOUDRON_POSTGRESQL_URL: a table, in the manifest's locale: {pg:?}"),
    );
    let my = clients::mariadb(
        env,
        work,
        "CREATE TABLE e2e_notes (note TEXT);\n\
         INSERT INTO e2e_notes VALUES ('written at install');\n\
         SELECT note FROM e2e_notes;\n",
    );
    ensure(my.ok && my.out == "written at install\n", || {
        format!("mariadb with the CLOUDRON_MYSQL_* credentials: {my:?}")
    });
    mongodb_works(env, 0);
    let redis = clients::redis(env, "SET e2e-note written-at-install\nGET e2e-note\n");
    ensure(
        redis.ok && redis.out == "OK\nOK\n\"written-at-install\"\n",
        || format!("redis-cli AUTH with CLOUDRON_REDIS_PASSWORD, SET, GET: {redis:?}"),
    );
}

/// The mongodb bundle logs in and writes a document in its database, where `before` documents
/// were already.
pub fn mongodb_works(env: &Bundle, before: usize) {
    let mongo = clients::mongo(
        env,
        "db.e2e_notes.insert_one({'note': 'written'})\n\
         print(db.name, db.e2e_notes.count_documents({}))",
    );
    let expected = format!("{} {}\n", env.var("MONGODB_DATABASE"), before + 1);
    ensure(mongo.ok && mongo.out == expected, || {
        format!("pymongo with CLOUDRON_MONGODB_URL: expected {expected:?}, got {mongo:?}")
    });
}

/// What [`works`] wrote is still there, with the same credentials.
pub fn kept(env: &Bundle, work: &Path) {
    let pg = clients::psql(env, "SELECT note FROM e2e_notes;\n");
    ensure(pg.ok && pg.out == "written at install\n", || {
        format!("psql after StartApp: {pg:?}")
    });
    let my = clients::mariadb(env, work, "SELECT note FROM e2e_notes;\n");
    ensure(my.ok && my.out == "written at install\n", || {
        format!("mariadb after StartApp: {my:?}")
    });
    let mongo = clients::mongo(env, "print(db.e2e_notes.count_documents({}))");
    ensure(mongo.ok && mongo.out == "1\n", || {
        format!("pymongo after StartApp: {mongo:?}")
    });
    let redis = clients::redis(env, "GET e2e-note\n");
    ensure(
        redis.ok && redis.out == "OK\n\"written-at-install\"\n",
        || format!("redis-cli after StartApp: {redis:?}"),
    );
}

/// Every database refuses the (old) bundle.
pub fn gone(env: &Bundle, work: &Path) {
    let pg = clients::psql(env, "SELECT 1;\n");
    ensure(
        !pg.ok && pg.out.contains("password authentication failed"),
        || format!("psql with the uninstalled app's credentials must be refused: {pg:?}"),
    );
    let my = clients::mariadb(env, work, "SELECT 1;\n");
    ensure(!my.ok && my.out.contains("Access denied"), || {
        format!("mariadb with the uninstalled app's credentials must be refused: {my:?}")
    });
    mongodb_gone(env);
    // The app's redis-server is gone with its data: nothing listens there any more (or, if
    // another app's instance took the port since, it does not know this password).
    let redis = clients::redis(env, "GET e2e-note\n");
    ensure(
        !redis.out.starts_with("OK\n") && !redis.out.contains("written"),
        || format!("redis-cli with the uninstalled app's credentials must be refused: {redis:?}"),
    );
}

/// The mongodb bundle is refused.
pub fn mongodb_gone(env: &Bundle) {
    let mongo = clients::mongo(env, "print(db.e2e_notes.count_documents({}))");
    ensure(
        !mongo.ok && mongo.out.contains("uthentication failed"),
        || format!("pymongo with removed credentials must be refused: {mongo:?}"),
    );
}
