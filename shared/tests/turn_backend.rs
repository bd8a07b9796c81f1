//! The TURN backend (deploy/turn/cluster.sh: coturn) as the turn addon will use it, proven with
//! coturn's own clients only: turnutils_uclient allocates (UDP, TCP, TLS, DTLS) and relays to a
//! turnutils_peer on loopback; openssl s_client looks at the certificate.
//!
//! Secrets are rows of coturn's SQLite user database (`turn_secret(realm, value)`), written as
//! the turn service writes them, while coturn runs. uclient takes credentials only on its
//! command line. Every test runs as root only (turnserver starts as root and drops to user
//! turnserver); otherwise it says SKIPPED and checks nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use fleet_shared::testkit::{Credentials, Transport, TurnServer, host};

/// How long a change of the secrets may take to count (measured: the next allocation).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

fn server() -> &'static TurnServer {
    TurnServer::shared().expect("TURN backend (deploy/install-deps.sh installs coturn)")
}

/// A fresh secret, not yet in the database.
fn new_secret(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A fresh secret, in the database.
fn secret(name: &str) -> String {
    let secret = new_secret(name);
    server().add_secret(&secret).unwrap();
    secret
}

fn with_secret<'a>(secret: &'a str) -> Credentials<'a> {
    Credentials::Secret {
        secret,
        user: "app",
    }
}

#[test]
fn a_secret_in_the_database_allocates_and_relays_over_udp_tcp_tls_and_dtls() {
    if !TurnServer::runnable() {
        return;
    }
    let turn = server();
    let secret = secret("every-transport");
    for transport in [
        Transport::Udp,
        Transport::Tcp,
        Transport::Tls,
        Transport::Dtls,
    ] {
        let allocation = turn.allocate(transport, with_secret(&secret)).unwrap();
        assert!(
            allocation.relayed(),
            "{transport:?}: {}\n{}",
            allocation.output,
            turn.log()
        );
    }
}

#[test]
fn credentials_minted_the_turn_rest_way_work_until_their_expiry() {
    if !TurnServer::runnable() {
        return;
    }
    let turn = server();
    let secret = secret("minted");
    let (username, password) =
        TurnServer::mint(&secret, "alice", Duration::from_secs(300)).unwrap();
    assert!(username.ends_with(":alice"), "{username}");
    let allocation = turn
        .allocate(
            Transport::Tcp,
            Credentials::Password {
                username: &username,
                password: &password,
            },
        )
        .unwrap();
    assert!(allocation.relayed(), "{}", allocation.output);

    // A known vector of the scheme (secret "north", username "1700000000:alice").
    let (username, password) = TurnServer::mint_at("north", "alice", 1_700_000_000).unwrap();
    assert_eq!(username, "1700000000:alice");
    assert_eq!(password, "Cd/49soE35ICqcJF/bCTn8Z4OyE=");

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (username, password) = TurnServer::mint_at(&secret, "alice", now - 60).unwrap();
    let allocation = turn
        .allocate(
            Transport::Udp,
            Credentials::Password {
                username: &username,
                password: &password,
            },
        )
        .unwrap();
    assert!(
        !allocation.allocated(),
        "an expired timestamp was accepted: {}",
        allocation.output
    );
}

#[test]
fn a_made_up_secret_and_a_wrong_password_are_refused() {
    if !TurnServer::runnable() {
        return;
    }
    let turn = server();
    let _ = secret("someone-elses");
    let made_up = new_secret("made-up");
    for transport in [Transport::Udp, Transport::Tcp] {
        let allocation = turn.allocate(transport, with_secret(&made_up)).unwrap();
        assert!(
            !allocation.allocated(),
            "{transport:?}: {}",
            allocation.output
        );
    }
    let real = secret("real");
    let (username, _) = TurnServer::mint(&real, "bob", Duration::from_secs(300)).unwrap();
    let (_, other_password) = TurnServer::mint(&made_up, "bob", Duration::from_secs(300)).unwrap();
    let allocation = turn
        .allocate(
            Transport::Udp,
            Credentials::Password {
                username: &username,
                password: &other_password,
            },
        )
        .unwrap();
    assert!(!allocation.allocated(), "{}", allocation.output);
}

#[test]
fn a_secret_counts_from_its_insert_and_stops_at_its_delete_while_others_keep_working() {
    if !TurnServer::runnable() {
        return;
    }
    let turn = server();
    let first = new_secret("first");
    let second = secret("second");

    turn.add_secret(&first).unwrap();
    let took = turn
        .wait_for_allocation(with_secret(&first), true, CHANGE_TIMEOUT)
        .unwrap()
        .unwrap_or_else(|| panic!("a new secret does not work after {CHANGE_TIMEOUT:?}"));
    eprintln!("a new secret allocated after {took:?} (one uclient run included)");

    turn.remove_secret(&first).unwrap();
    assert!(!turn.secrets().unwrap().contains(&first));
    let took = turn
        .wait_for_allocation(with_secret(&first), false, CHANGE_TIMEOUT)
        .unwrap()
        .unwrap_or_else(|| panic!("a removed secret still works after {CHANGE_TIMEOUT:?}"));
    eprintln!("a removed secret was refused after {took:?} (one uclient run included)");
    assert!(
        took < Duration::from_secs(2),
        "the first allocation after the delete should fail: {took:?}"
    );

    for transport in [Transport::Udp, Transport::Tls] {
        let allocation = turn.allocate(transport, with_secret(&second)).unwrap();
        assert!(allocation.relayed(), "{transport:?}: {}", allocation.output);
    }
    let allocation = turn.allocate(Transport::Tcp, with_secret(&first)).unwrap();
    assert!(!allocation.allocated(), "{}", allocation.output);
}

#[test]
fn writes_to_the_database_while_clients_authenticate_make_no_allocation_fail() {
    if !TurnServer::runnable() {
        return;
    }
    let turn = server();
    let secret = secret("under-writes");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut writes = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let other = new_secret("churn");
                server().add_secret(&other).unwrap();
                server().remove_secret(&other).unwrap();
                writes += 2;
            }
            writes
        })
    };
    let mut failed = Vec::new();
    for round in 0..6 {
        let transport = if round % 2 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let allocation = turn.allocate(transport, with_secret(&secret)).unwrap();
        if !allocation.allocated() {
            failed.push(allocation.output);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    eprintln!("{writes} writes during 6 allocations");
    assert!(writes > 10, "the writer hardly ran: {writes}");
    assert!(failed.is_empty(), "{failed:#?}\n{}", turn.log());
    assert!(!turn.log().contains("database is locked"), "{}", turn.log());
}

#[test]
fn an_open_allocation_keeps_relaying_after_its_secret_is_removed() {
    if !TurnServer::runnable() {
        return;
    }
    let turn = server();
    let secret = secret("open");
    // Prove the peer is up (the kit's peer starts with the first allocation).
    assert!(
        turn.allocate(Transport::Udp, with_secret(&secret))
            .unwrap()
            .relayed()
    );
    let removed = secret.clone();
    let remover = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        server().remove_secret(&removed).unwrap();
    });
    // uclient sends its messages after allocating; 100 messages 40 ms apart outlast the
    // delete. The channel and permission were made before it.
    let allocation = turn
        .allocate_long(Transport::Udp, with_secret(&secret), 100, 40)
        .unwrap();
    remover.join().unwrap();
    assert!(allocation.relayed(), "{}", allocation.output);
    // While a new one is refused.
    let allocation = turn.allocate(Transport::Udp, with_secret(&secret)).unwrap();
    assert!(!allocation.allocated(), "{}", allocation.output);
}

#[test]
fn peers_on_private_link_local_and_shared_addresses_are_refused() {
    if !TurnServer::runnable() {
        return;
    }
    let turn = server();
    let secret = secret("private-peers");
    let mut peers = vec![TurnServer::private_peer()];
    peers.extend(
        [
            Ipv4Addr::new(172, 20, 0, 1),
            Ipv4Addr::new(192, 168, 1, 1),
            Ipv4Addr::new(169, 254, 169, 254),
            Ipv4Addr::new(100, 64, 0, 1),
            Ipv4Addr::new(0, 0, 0, 1),
        ]
        .map(|ip| SocketAddr::from((ip, 3480))),
    );
    for peer in peers {
        for transport in [Transport::Udp, Transport::Tcp] {
            let allocation = turn
                .allocate_to(transport, with_secret(&secret), peer)
                .unwrap();
            assert!(
                allocation.peer_forbidden(),
                "{peer} over {transport:?}: {}",
                allocation.output
            );
        }
    }
    assert!(
        turn.log()
            .contains("A peer IP 10.11.12.13 denied in the range")
    );
}

#[test]
fn loopback_peers_are_refused_unless_allowed() {
    if !TurnServer::runnable() {
        return;
    }
    let mut strict = TurnServer::start_with(&[("TURN_ALLOW_LOOPBACK", "0")]).unwrap();
    let secret = new_secret("loopback");
    strict.add_secret(&secret).unwrap();
    let allocation = strict
        .allocate(Transport::Udp, with_secret(&secret))
        .unwrap();
    assert!(allocation.peer_forbidden(), "{}", allocation.output);
    let config = std::fs::read_to_string(strict.config_file()).unwrap();
    assert!(!config.contains("allow-loopback-peers"), "{config}");
    assert!(config.contains("denied-peer-ip=127.0.0.0-127.255.255.255"));
    assert!(config.contains("no-cli"));
    strict.stop().unwrap();
}

#[test]
fn the_database_and_the_key_are_closed_to_other_users_and_turnserver_is_not_root() {
    if !TurnServer::runnable() {
        return;
    }
    let turn = server();
    let _ = secret("closed");
    for path in [turn.db_path(), turn.key_file()] {
        let read = Command::new("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .arg("cat")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!read.success(), "nobody can read {}", path.display());
    }
    for dir in [turn.dir().join("db"), turn.dir().join("tls")] {
        let open = host::open_to_others(&dir);
        assert!(open.is_empty(), "open to others: {open:?}");
    }
    let pid: u32 = std::fs::read_to_string(turn.dir().join("run/turnserver.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let uids = host::uids(pid).unwrap();
    let turnserver = host::uid_of("turnserver").unwrap();
    assert!(
        uids.iter().all(|uid| *uid == turnserver),
        "turnserver runs as {uids:?}"
    );
    // Nothing under /var/log from this server (coturn logs to stdout here).
    let config = std::fs::read_to_string(turn.config_file()).unwrap();
    assert!(config.contains("log-file=stdout"), "{config}");
}

#[test]
fn the_tls_port_presents_an_end_entity_certificate_for_the_realm_and_loopback() {
    if !TurnServer::runnable() {
        return;
    }
    let turn = server();
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(turn.cert_file())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(
        text.contains(&format!("DNS:{}", turn.realm())) && text.contains("IP Address:127.0.0.1"),
        "{text}"
    );
    let verify = Command::new("openssl")
        .args([
            "s_client",
            "-brief",
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
        ])
        .arg("-CAfile")
        .arg(turn.cert_file())
        .arg("-connect")
        .arg(format!("127.0.0.1:{}", turn.tls_port()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verify.stdout).into_owned()
        + &String::from_utf8_lossy(&verify.stderr);
    assert!(
        said.contains("Verification: OK") && !said.contains("TLSv1.1"),
        "{said}"
    );
}
