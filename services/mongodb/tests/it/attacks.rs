//! One app attacking another with nothing but its own bundle and the `mongodb` driver.
//!
//! Against a real mongod (`MONGODB_TEST_ADMIN_URL`) every attack must be blocked. SecantusDB,
//! the stand-in `make up` and the tests run, does not enforce all of its own access control:
//! the attacks it lets through are printed as `KNOWN STAND-IN GAP: ...` and must be exactly
//! [`KNOWN_STAND_IN_GAPS`], so a new gap fails the test and a fixed one shrinks the list. These
//! are defects of the stand-in, not of the provisioning: the service gives each app `readWrite`
//! on its own database and nothing else, which a real mongod enforces.

use std::{collections::HashMap, io::Write};

use fleet_shared::testkit::MongoServer;
use mongodb::{
    Client as Driver,
    bson::{Bson, Document, doc},
    error::{Error, ErrorKind},
};

use crate::support::*;

/// The attacks SecantusDB 0.7.0b3 lets through (see the module header), in the order they run.
const KNOWN_STAND_IN_GAPS: &[&str] = &[
    "bulkWrite on admin writing another app's database",
    "bulkWrite on admin reading another app's database (by its match count)",
    "renameCollection from the own database into another app's",
    "killAllSessions",
    "replSetStepDown",
];

/// MongoDB's "not authorized" error code.
const UNAUTHORIZED: i32 = 13;

type Env = HashMap<String, String>;

/// Two apps, each with a driver connected with its own bundle.
struct Apps {
    a: Driver,
    a_db: String,
    a_user: String,
    b: Driver,
    b_db: String,
}

impl Apps {
    async fn new(a: &Env, b: &Env) -> Self {
        Self {
            a: driver(&a["CLOUDRON_MONGODB_URL"]).await,
            a_db: a["CLOUDRON_MONGODB_DATABASE"].clone(),
            a_user: a["CLOUDRON_MONGODB_USERNAME"].clone(),
            b: driver(&b["CLOUDRON_MONGODB_URL"]).await,
            b_db: b["CLOUDRON_MONGODB_DATABASE"].clone(),
        }
    }

    /// A runs `command` on database `db`.
    async fn a_runs(&self, db: &str, command: Document) -> Result<Document, Error> {
        self.a.database(db).run_command(command).await
    }

    /// How many documents of B's collection `collection` match `filter`, as B sees them.
    async fn b_count(&self, collection: &str, filter: Document) -> u64 {
        self.b
            .database(&self.b_db)
            .collection::<Document>(collection)
            .count_documents(filter)
            .await
            .unwrap()
    }

    /// B's collection names, as B sees them.
    async fn b_collections(&self) -> Vec<String> {
        self.b
            .database(&self.b_db)
            .list_collection_names()
            .await
            .unwrap()
    }

    /// A's collection names, as A sees them.
    async fn a_collections(&self) -> Vec<String> {
        self.a
            .database(&self.a_db)
            .list_collection_names()
            .await
            .unwrap()
    }
}

fn code(error: &Error) -> Option<i32> {
    match error.kind.as_ref() {
        ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}

/// A number in a server reply, whatever its BSON type; 0 if absent.
fn number(reply: &Document, key: &str) -> i64 {
    match reply.get(key) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}

/// Runs every attack of A on B; `(attack, blocked)` in order. The ones that would disturb the
/// whole server if they went through come last.
async fn attacks(apps: &Apps) -> Vec<(&'static str, bool)> {
    let (a_db, b_db) = (apps.a_db.as_str(), apps.b_db.as_str());
    let mut results = Vec::new();

    let read = apps
        .a
        .database(b_db)
        .collection::<Document>("t")
        .find_one(doc! {})
        .await;
    results.push(("reading another app's database", read.is_err()));

    let write = apps
        .a
        .database(b_db)
        .collection::<Document>("t")
        .insert_one(doc! {"planted": "direct"})
        .await;
    let planted = apps.b_count("t", doc! {"planted": "direct"}).await;
    results.push((
        "writing another app's database",
        write.is_err() && planted == 0,
    ));

    let dropped = apps.a_runs(b_db, doc! {"dropDatabase": 1}).await;
    let left = apps.b_count("t", doc! {"secret": "b"}).await;
    results.push((
        "dropping another app's database",
        dropped.is_err() && left == 1,
    ));

    let ns = format!("{b_db}.t");
    let bulk_write = apps
        .a_runs(
            "admin",
            doc! {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"planted": "bulkWrite"}}],
            "nsInfo": [{"ns": &ns}]},
        )
        .await;
    let planted = apps.b_count("t", doc! {"planted": "bulkWrite"}).await;
    results.push((
        "bulkWrite on admin writing another app's database",
        planted == 0 && bulk_write.is_err_or_reports_errors(),
    ));

    // An update that changes nothing, but whose match count says whether B has the document.
    let oracle = apps
        .a_runs(
            "admin",
            doc! {"bulkWrite": 1,
            "ops": [{"update": 0, "filter": {"secret": "b"}, "updateMods": {"$set": {"secret": "b"}}}],
            "nsInfo": [{"ns": &ns}]},
        )
        .await;
    let revealed = oracle
        .as_ref()
        .is_ok_and(|reply| number(reply, "nMatched") > 0);
    results.push((
        "bulkWrite on admin reading another app's database (by its match count)",
        !revealed,
    ));

    apps.a
        .database(a_db)
        .collection::<Document>("mine")
        .insert_one(doc! {"x": 1})
        .await
        .unwrap();
    let out = apps
        .a_runs(
            "admin",
            doc! {"renameCollection": format!("{a_db}.mine"), "to": format!("{b_db}.pushed")},
        )
        .await;
    let pushed = apps.b_collections().await.contains(&"pushed".to_owned());
    results.push((
        "renameCollection from the own database into another app's",
        out.is_err() && !pushed,
    ));

    let into = apps
        .a_runs(
            "admin",
            doc! {"renameCollection": format!("{b_db}.t"), "to": format!("{a_db}.loot")},
        )
        .await;
    let looted = apps.a_collections().await.contains(&"loot".to_owned());
    let kept = apps.b_collections().await.contains(&"t".to_owned());
    results.push((
        "renameCollection from another app's database into the own",
        into.is_err() && !looted && kept,
    ));

    let user = apps
        .a_runs(
            a_db,
            doc! {"createUser": "intruder", "pwd": "intruder password",
            "roles": [{"role": "root", "db": "admin"}]},
        )
        .await;
    results.push(("createUser with role root", user.is_err()));
    let user = apps
        .a_runs(
            a_db,
            doc! {"createUser": "intruder2", "pwd": "intruder password",
            "roles": [{"role": "readWrite", "db": a_db}]},
        )
        .await;
    results.push(("createUser on the own database", user.is_err()));

    let granted = apps
        .a_runs(
            a_db,
            doc! {"grantRolesToUser": &apps.a_user, "roles": [{"role": "readWrite", "db": b_db}]},
        )
        .await;
    results.push((
        "grantRolesToUser giving itself another app's database",
        granted.is_err(),
    ));

    let users = apps
        .a_runs("admin", doc! {"find": "system.users", "filter": {}})
        .await;
    let seen = users.as_ref().is_ok_and(|reply| {
        reply
            .get_document("cursor")
            .and_then(|cursor| cursor.get_array("firstBatch"))
            .is_ok_and(|batch| !batch.is_empty())
    });
    results.push(("reading admin.system.users", !seen));

    let databases = apps
        .a_runs("admin", doc! {"listDatabases": 1, "nameOnly": true})
        .await;
    let listed = databases
        .as_ref()
        .is_ok_and(|reply| format!("{reply:?}").contains(b_db));
    results.push(("listDatabases showing another app's database", !listed));

    let killed = apps.a_runs("admin", doc! {"killAllSessions": []}).await;
    results.push((
        "killAllSessions",
        killed.as_ref().err().and_then(code) == Some(UNAUTHORIZED),
    ));

    let stepped_down = apps
        .a_runs(
            "admin",
            doc! {"replSetStepDown": 5, "secondaryCatchUpPeriodSecs": 1},
        )
        .await;
    results.push((
        "replSetStepDown",
        stepped_down.as_ref().err().and_then(code) == Some(UNAUTHORIZED),
    ));
    results
}

trait Outcome {
    /// The command failed, or it ran and reported that none of its operations did.
    fn is_err_or_reports_errors(&self) -> bool;
}

impl Outcome for Result<Document, Error> {
    fn is_err_or_reports_errors(&self) -> bool {
        match self {
            Err(_) => true,
            Ok(reply) => number(reply, "nErrors") > 0 && number(reply, "nInserted") == 0,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_app_cannot_reach_another_through_the_server() {
    // The attacks may disturb the whole server when they go through (killAllSessions,
    // replSetStepDown), so against SecantusDB they get a server of their own.
    let own;
    let server: &MongoServer = if mongo().is_secantus() {
        own = tokio::task::spawn_blocking(MongoServer::start)
            .await
            .unwrap()
            .expect("a SecantusDB of the attacks' own");
        &own
    } else {
        mongo()
    };
    let service = start_service_with(&server.admin_url()).await;
    let mut client = service.client().await;
    let (a_id, b_id) = (app_id("attacker"), app_id("victim"));
    let a = provision(&mut client, request(&a_id, false)).await.unwrap();
    let b = provision(&mut client, request(&b_id, false)).await.unwrap();
    let apps = Apps::new(&a, &b).await;
    apps.b
        .database(&apps.b_db)
        .collection::<Document>("t")
        .insert_one(doc! {"secret": "b"})
        .await
        .unwrap();

    let results = attacks(&apps).await;
    let through: Vec<&str> = results
        .iter()
        .filter(|(_, blocked)| !blocked)
        .map(|(attack, _)| *attack)
        .collect();
    for (attack, blocked) in &results {
        eprintln!(
            "attack {attack}: {}",
            if *blocked { "blocked" } else { "NOT BLOCKED" }
        );
    }
    if server.is_secantus() {
        // Straight to stderr, past the test harness's capture: the gaps are reported on every
        // run, not only when the test fails.
        let mut stderr = std::io::stderr().lock();
        for gap in &through {
            let _ = writeln!(
                stderr,
                "KNOWN STAND-IN GAP: SecantusDB lets one app do this to another: {gap} \
                 (a real mongod refuses it; the stand-in is for development and tests only)"
            );
        }
        assert_eq!(
            through, KNOWN_STAND_IN_GAPS,
            "the attacks SecantusDB lets through changed: a new gap is a regression; a fixed \
             one must leave KNOWN_STAND_IN_GAPS"
        );
    } else {
        assert!(through.is_empty(), "attacks not blocked: {through:?}");
    }

    // The server may have dropped every session: reconnect for the clean-up.
    let mut client = service.client().await;
    let _ = deprovision(&mut client, &a_id).await;
    let _ = deprovision(&mut client, &b_id).await;
    service.stop().await;
}
