//! A private coturn, set up by `deploy/turn/cluster.sh` like the one `make up` starts: TURN and
//! STUN over UDP and TCP on its port, TLS and DTLS on the next, `use-auth-secret` (the TURN REST
//! scheme) with the secrets in its SQLite user database `DIR/db/turndb`, table
//! `turn_secret(realm, value)`.
//!
//! Secrets are added and removed the way the turn service does it: rows written with the sqlite3
//! CLI, as root. coturn reads the table at every authentication, so a change counts for the next
//! allocation: no reload, no wait. Allocations are made by coturn's own client,
//! `turnutils_uclient`, relaying to a `turnutils_peer` on loopback (the kit's server allows
//! loopback peers: `TURN_ALLOW_LOOPBACK=1`). uclient takes credentials only on its command line.
//!
//! Relay ports come from a block of [`RELAY_PORTS`] UDP ports that were free a moment ago, below
//! the kernel's ephemeral range. A UDP allocation of uclient is never released by it: it holds
//! its relay port until its lifetime ends (10 minutes), so a test should not make hundreds.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader},
    net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket},
    ops::RangeInclusive,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, ExitStatus, Stdio},
    sync::OnceLock,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use super::{
    TestkitError, Watched, accepts_tcp, deploy_script, free_port_block,
    script::{ScriptWrapper, shell_quote, with_stdin},
};

/// How many relay ports the kit's servers get.
pub const RELAY_PORTS: u16 = 200;

/// How long one uclient run may take (a run relaying two messages takes 1.5-2.5 s).
const UCLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// How a client reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP on the TURN port.
    Udp,
    /// TCP on the TURN port.
    Tcp,
    /// TLS over TCP on the TLS port.
    Tls,
    /// DTLS over UDP on the TLS port.
    Dtls,
}

/// The credentials a client allocates with.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    /// uclient mints them itself (`-W`): username `<now + 1 day>:user`, password under `secret`.
    Secret {
        /// The shared secret.
        secret: &'a str,
        /// The user part of the username.
        user: &'a str,
    },
    /// A username and password as given (`-u`, `-w`), e.g. from [`TurnServer::mint`].
    Password {
        /// `expiry:user`.
        username: &'a str,
        /// base64(HMAC-SHA1(secret, username)).
        password: &'a str,
    },
}

/// What one uclient run did.
#[derive(Debug)]
pub struct Allocation {
    /// uclient's exit status (0 once the allocation and its permissions or channels were made,
    /// whether or not data came back; 255 when they were refused).
    pub status: ExitStatus,
    /// What uclient printed (stdout and stderr).
    pub output: String,
}

impl Allocation {
    /// The allocation, its permission and channel were made.
    pub fn allocated(&self) -> bool {
        self.status.success()
    }

    /// The allocation was made and every message came back from the peer through the relay.
    pub fn relayed(&self) -> bool {
        self.allocated()
            && self.output.contains("tot_recv_msgs=")
            && self.output.contains("Total lost packets 0 (")
            && !self.output.contains("tot_recv_msgs=0\n")
    }

    /// The server refused the peer address (403 Forbidden IP on a permission or channel).
    pub fn peer_forbidden(&self) -> bool {
        !self.allocated() && self.output.contains("error 403")
    }
}

/// A running coturn on 127.0.0.1. Stopped when dropped or when the test process exits.
pub struct TurnServer {
    server: Watched,
    realm: String,
    relay: RangeInclusive<u16>,
    /// The loopback peer allocations relay to, started on first use.
    peer: OnceLock<Result<Peer, String>>,
}

impl TurnServer {
    /// The realm of the kit's servers (the script's default).
    pub const REALM: &str = "turn.example.test";

    /// Whether a TURN server can run here: the script starts turnserver as root (it drops to
    /// coturn's user). When not, says so on stderr, for the test that then checks nothing.
    pub fn runnable() -> bool {
        let root = super::host::running_as_root();
        if !root {
            eprintln!(
                "SKIPPED: the TURN backend needs root (deploy/turn/cluster.sh starts turnserver \
                 as root, which drops to user turnserver)"
            );
        }
        root
    }

    /// One server shared by all tests of this process, started on first use, with loopback
    /// peers allowed.
    pub fn shared() -> Result<&'static Self, TestkitError> {
        static SHARED: OnceLock<Result<TurnServer, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Self::start().map_err(|e| e.0))
            .as_ref()
            .map_err(|e| TestkitError(e.clone()))
    }

    /// Starts a new server with loopback peers allowed (`TURN_ALLOW_LOOPBACK=1`).
    pub fn start() -> Result<Self, TestkitError> {
        Self::start_with(&[])
    }

    /// Starts a new server with the script's settings `env` (`TURN_ALLOW_LOOPBACK=0`,
    /// `TURN_REALM`...) for both its init and its run, over the kit's defaults
    /// (`TURN_ALLOW_LOOPBACK=1`, `TURN_RELAY_PORTS` a free block).
    pub fn start_with(env: &[(&str, &str)]) -> Result<Self, TestkitError> {
        let first = free_udp_block(RELAY_PORTS)?;
        let relay = first..=first + (RELAY_PORTS - 1);
        let mut settings = vec![
            ("TURN_ALLOW_LOOPBACK".to_owned(), "1".to_owned()),
            (
                "TURN_RELAY_PORTS".to_owned(),
                format!("{}-{}", relay.start(), relay.end()),
            ),
        ];
        settings.extend(
            env.iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        let realm = settings
            .iter()
            .rev()
            .find(|(name, _)| name == "TURN_REALM")
            .map_or_else(|| Self::REALM.to_owned(), |(_, value)| value.clone());
        let wrapper = wrapper(&deploy_script("turn/cluster.sh"), &settings)?;
        let server = Watched::start_on(
            "turn",
            wrapper.script(),
            &[],
            "TERM",
            || free_port_block(2),
            |port| accepts_tcp(port) && accepts_tcp(port + 1),
        )?;
        drop(wrapper);
        Ok(Self {
            server,
            realm,
            relay,
            peer: OnceLock::new(),
        })
    }

    /// TURN and STUN over UDP and TCP.
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// TURN over TLS and DTLS.
    pub fn tls_port(&self) -> u16 {
        self.server.port + 1
    }

    /// The relay ports (`TURN_RELAY_PORTS`).
    pub fn relay_ports(&self) -> RangeInclusive<u16> {
        self.relay.clone()
    }

    /// The realm of every credential (`TURN_REALM`).
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The server's directory (configuration, certificate, user database).
    pub fn dir(&self) -> &Path {
        &self.server.base
    }

    /// The user database, whose table `turn_secret(realm, value)` holds the secrets.
    pub fn db_path(&self) -> PathBuf {
        self.dir().join("db/turndb")
    }

    /// The certificate of the TLS port (self-signed, for the realm and 127.0.0.1).
    pub fn cert_file(&self) -> PathBuf {
        self.dir().join("tls/cert.pem")
    }

    /// The certificate's private key.
    pub fn key_file(&self) -> PathBuf {
        self.dir().join("tls/key.pem")
    }

    /// The rendered configuration.
    pub fn config_file(&self) -> PathBuf {
        self.dir().join("turnserver.conf")
    }

    /// What the server printed so far (coturn logs to stdout).
    pub fn log(&self) -> String {
        self.server.log()
    }

    /// Adds `secret` to the realm (a row of `turn_secret`; nothing if it is there).
    pub fn add_secret(&self, secret: &str) -> Result<(), TestkitError> {
        self.sql(&format!(
            "INSERT OR IGNORE INTO turn_secret (realm, value) VALUES ({}, {});\n",
            sql_quote(&self.realm),
            sql_quote(checked_secret(secret)?)
        ))
    }

    /// Removes `secret` from the realm (nothing if it is not there).
    pub fn remove_secret(&self, secret: &str) -> Result<(), TestkitError> {
        self.sql(&format!(
            "DELETE FROM turn_secret WHERE realm = {} AND value = {};\n",
            sql_quote(&self.realm),
            sql_quote(checked_secret(secret)?)
        ))
    }

    /// The secrets of the realm now.
    pub fn secrets(&self) -> Result<Vec<String>, TestkitError> {
        let output = self.sql_output(&format!(
            "SELECT value FROM turn_secret WHERE realm = {} ORDER BY value;\n",
            sql_quote(&self.realm)
        ))?;
        Ok(output.lines().map(str::to_owned).collect())
    }

    /// Credentials of the TURN REST scheme valid for `ttl` from now: see [`TurnServer::mint_at`].
    pub fn mint(secret: &str, user: &str, ttl: Duration) -> Result<(String, String), TestkitError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| TestkitError::new(format!("the clock is before 1970: {e}")))?;
        Self::mint_at(secret, user, (now + ttl).as_secs())
    }

    /// Credentials of the TURN REST scheme: username `<expiry>:<user>` (`expiry` in Unix
    /// seconds), password base64(HMAC-SHA1(`secret`, username)).
    pub fn mint_at(
        secret: &str,
        user: &str,
        expiry: u64,
    ) -> Result<(String, String), TestkitError> {
        let secret = checked_secret(secret)?;
        if user.contains(['\n', '\r', ':']) {
            return Err(TestkitError::new(format!("not a TURN user: {user:?}")));
        }
        let username = format!("{expiry}:{user}");
        let password = rest_password(secret, &username)
            .map_err(|e| TestkitError::new(format!("cannot mint a password: {e}")))?;
        Ok((username, password))
    }

    /// An allocation over `transport` with `credentials`, relaying two messages to the kit's
    /// loopback peer (`turnutils_uclient ... -e 127.0.0.1 -r PEER -n 2 -m 1 -c -X`).
    pub fn allocate(
        &self,
        transport: Transport,
        credentials: Credentials<'_>,
    ) -> Result<Allocation, TestkitError> {
        let peer = self.peer()?;
        self.allocate_to(transport, credentials, peer)
    }

    /// An allocation over `transport` with `credentials`, relaying two messages to `peer`
    /// (through a channel: uclient's default).
    pub fn allocate_to(
        &self,
        transport: Transport,
        credentials: Credentials<'_>,
        peer: SocketAddr,
    ) -> Result<Allocation, TestkitError> {
        self.uclient(transport, credentials, peer, 2, 20)
    }

    /// An allocation that relays `messages` messages `interval_ms` apart to the kit's loopback
    /// peer (for changes made while an allocation is open).
    pub fn allocate_long(
        &self,
        transport: Transport,
        credentials: Credentials<'_>,
        messages: u32,
        interval_ms: u32,
    ) -> Result<Allocation, TestkitError> {
        let peer = self.peer()?;
        self.uclient(transport, credentials, peer, messages, interval_ms)
    }

    /// The kit's loopback peer (`turnutils_peer`), started on first use.
    pub fn peer(&self) -> Result<SocketAddr, TestkitError> {
        self.peer
            .get_or_init(|| Peer::start().map_err(|e| e.0))
            .as_ref()
            .map(|peer| peer.addr)
            .map_err(|e| TestkitError(e.clone()))
    }

    fn uclient(
        &self,
        transport: Transport,
        credentials: Credentials<'_>,
        peer: SocketAddr,
        messages: u32,
        interval_ms: u32,
    ) -> Result<Allocation, TestkitError> {
        let mut command = Command::new("timeout");
        command
            .arg(format!("{}s", UCLIENT_TIMEOUT.as_secs()))
            .arg("turnutils_uclient");
        let port = match transport {
            Transport::Udp => self.port(),
            Transport::Tcp => {
                command.arg("-t");
                self.port()
            }
            Transport::Tls => {
                // With the suite it picks itself (ECDHE-RSA-AES256-GCM-SHA384), uclient over TLS
                // waits forever for the relayed data in most runs; with this one, never.
                command.args(["-t", "-S", "-F", "ECDHE-RSA-AES128-GCM-SHA256"]);
                self.tls_port()
            }
            Transport::Dtls => {
                command.arg("-S");
                self.tls_port()
            }
        };
        match credentials {
            Credentials::Secret { secret, user } => {
                command.args(["-W", secret, "-u", user]);
            }
            Credentials::Password { username, password } => {
                command.args(["-u", username, "-w", password]);
            }
        }
        command
            .arg("-p")
            .arg(port.to_string())
            .arg("-e")
            .arg(peer.ip().to_string())
            .arg("-r")
            .arg(peer.port().to_string())
            .arg("-n")
            .arg(messages.to_string())
            .arg("-z")
            .arg(interval_ms.to_string())
            .args(["-m", "1", "-c", "-X", "127.0.0.1"])
            .stdin(Stdio::null());
        let output = command.output().map_err(|e| {
            TestkitError::new(format!(
                "cannot run turnutils_uclient (deploy/install-deps.sh installs coturn): {e}"
            ))
        })?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        let _ = write!(text, "{}", String::from_utf8_lossy(&output.stderr));
        Ok(Allocation {
            status: output.status,
            output: text,
        })
    }

    /// Polls allocations over UDP with `credentials` until one is `made` (or not), or until
    /// `timeout`; how long that took, or None.
    pub fn wait_for_allocation(
        &self,
        credentials: Credentials<'_>,
        made: bool,
        timeout: Duration,
    ) -> Result<Option<Duration>, TestkitError> {
        let start = Instant::now();
        loop {
            if self.allocate(Transport::Udp, credentials)?.allocated() == made {
                return Ok(Some(start.elapsed()));
            }
            if start.elapsed() >= timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A peer address in a range the server must refuse (10.0.0.0/8), for tests of the peer filter:
    /// nothing needs to listen there, coturn refuses the permission before sending anything.
    pub fn private_peer() -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 11, 12, 13)), 3480)
    }

    /// Stops the server and waits until it is gone.
    pub fn stop(&mut self) -> Result<(), TestkitError> {
        self.server.stop()
    }

    /// Runs `script` against the user database with the sqlite3 CLI (as root, waiting up to 10 s
    /// for a concurrent writer).
    fn sql(&self, script: &str) -> Result<(), TestkitError> {
        self.sql_output(script).map(drop)
    }

    fn sql_output(&self, script: &str) -> Result<String, TestkitError> {
        let mut command = Command::new("sqlite3");
        command
            .args(["-init", "/dev/null", "-batch", "-bail"])
            .arg(self.db_path());
        let output = with_stdin(command, &format!(".timeout 10000\n{script}"), "sqlite3")?;
        if output.status.success() && output.stderr.is_empty() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(TestkitError::new(format!(
                "sqlite3 failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            )))
        }
    }
}

/// The TURN REST password of `username` under `secret`: base64(HMAC-SHA1(secret, username)).
fn rest_password(secret: &str, username: &str) -> Result<String, hmac::digest::InvalidLength> {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())?;
    mac.update(username.as_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// `secret` if the table and uclient's command line can take it as it is.
fn checked_secret(secret: &str) -> Result<&str, TestkitError> {
    if secret.is_empty() || secret.len() > 127 || secret.chars().any(char::is_control) {
        Err(TestkitError::new(
            "a TURN secret must be 1-127 characters without control characters",
        ))
    } else {
        Ok(secret)
    }
}

/// The first of `count` consecutive ports, below the kernel's ephemeral range (so that no
/// client's port lands in it later), that were all free for UDP and TCP a moment ago.
fn free_udp_block(count: u16) -> Result<u16, TestkitError> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default()
        ^ std::process::id();
    let (low, high) = (20_000u32, 32_000u32);
    let span = high - low - u32::from(count);
    for attempt in 0..50u32 {
        let first = low + (seed.wrapping_add(attempt.wrapping_mul(7919))) % span;
        let Ok(first) = u16::try_from(first) else {
            continue;
        };
        let free = (first..first + count).all(|port| {
            UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
                && std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
        });
        if free {
            return Ok(first);
        }
    }
    Err(TestkitError::new(format!(
        "no {count} consecutive free UDP ports for relays"
    )))
}

/// coturn's `turnutils_peer` on 127.0.0.1, echoing what relays send it, under a shell that
/// stops it when our end of its stdin closes (when this process exits, however it exits).
struct Peer {
    addr: SocketAddr,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Peer {
    fn start() -> Result<Self, TestkitError> {
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .map_err(|e| TestkitError::new(format!("no free UDP port: {e}")))?;
            let addr = socket
                .local_addr()
                .map_err(|e| TestkitError::new(format!("no free UDP port: {e}")))?;
            drop(socket);
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(
                    "turnutils_peer -L 127.0.0.1 -p \"$1\" >/dev/null 2>&1 & pid=$!\n\
                     echo started\n\
                     read _ignored\n\
                     kill \"$pid\" 2>/dev/null\n\
                     wait \"$pid\" 2>/dev/null",
                )
                .arg("sh")
                .arg(addr.port().to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| TestkitError::new(format!("cannot start turnutils_peer: {e}")))?;
            let stdin = child.stdin.take();
            if let Some(stdout) = child.stdout.take() {
                let mut line = String::new();
                let _ = BufReader::new(stdout).read_line(&mut line);
            }
            let mut peer = Self { addr, child, stdin };
            // Bound once our own bind of its port fails.
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if UdpSocket::bind(addr).is_err() {
                    return Ok(peer);
                }
                if let Ok(Some(status)) = peer.child.try_wait() {
                    last_error = format!("turnutils_peer exited ({status})");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            peer.stop();
            if last_error.is_empty() {
                last_error = format!("turnutils_peer did not bind {addr}");
            }
        }
        Err(TestkitError::new(last_error))
    }

    fn stop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `value` as an SQL string literal.
fn sql_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The wrapper that runs `deploy/turn/cluster.sh` with settings in its environment, taking the
/// kit's `init DIR PASSWORD_FILE` (the script has no password: the file is removed) and
/// `run DIR PORT`.
fn wrapper(cluster: &str, settings: &[(String, String)]) -> Result<ScriptWrapper, TestkitError> {
    let mut wrapper = ScriptWrapper::new("turn", settings)?;
    let cluster = shell_quote(cluster);
    wrapper.write(&format!(
        "case \"$1\" in\n\
         init) rm -f \"$3\"; exec {cluster} init \"$2\" ;;\n\
         *) exec {cluster} \"$@\" ;;\n\
         esac\n"
    ))?;
    Ok(wrapper)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::TurnServer;

    #[test]
    fn mint_at_matches_a_known_vector_of_the_turn_rest_scheme() {
        let (username, password) = TurnServer::mint_at("north", "alice", 1_700_000_000).unwrap();
        assert_eq!(username, "1700000000:alice");
        assert_eq!(password, "Cd/49soE35ICqcJF/bCTn8Z4OyE=");
        assert!(TurnServer::mint_at("north", "a:b", 1).is_err());
        assert!(TurnServer::mint_at("", "alice", 1).is_err());
    }
}
