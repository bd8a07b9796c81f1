//! Out of file descriptors, the accept loop pauses instead of spinning on EMFILE. A test binary
//! of its own: it lowers this process's descriptor limit (with util-linux's `prlimit`), which
//! would break tests running beside it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    process::Command,
    time::Duration,
};

use fleet_shared::listener::{ServerLimits, incoming};
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};

/// CPU time this process has used (user + system), in clock ticks, from `stat`: this
/// process's /proc/self/stat, opened before the descriptors ran out.
fn cpu_ticks(stat: &mut File) -> u64 {
    let mut text = String::new();
    stat.seek(SeekFrom::Start(0)).unwrap();
    stat.read_to_string(&mut text).unwrap();
    let stat = text;
    // Fields after the command name (which is in parentheses); utime and stime are the
    // 14th and 15th fields of the whole line.
    let after = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loop_pauses_instead_of_spinning() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ServerLimits {
        max_connections: 10_000,
        ..ServerLimits::default()
    };
    // A hundred connections waiting in the listen backlog before the server accepts any.
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(TcpStream::connect(addr).await.unwrap());
    }
    // Room for ten more descriptors: the server accepts ten, then every accept fails with
    // EMFILE while ninety connections still wait.
    let mut stat = File::open("/proc/self/stat").unwrap();
    let limit = open_descriptors() + 10;
    let lowered = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("prlimit (util-linux)");
    assert!(lowered.success());
    let server = tokio::spawn(async move {
        let mut accepted = Vec::new();
        let mut connections = Box::pin(incoming(listener, limits));
        while let Some(connection) = connections.next().await {
            accepted.push(connection.unwrap());
        }
    });
    // Let the server take what it can.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A spinning accept loop burns a core; a pausing one almost nothing.
    let before = cpu_ticks(&mut stat);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = cpu_ticks(&mut stat) - before;
    let ticks_per_second = 100; // USER_HZ on Linux
    assert!(
        used < ticks_per_second / 4,
        "the process used {used} ticks of CPU in one second while out of descriptors"
    );
    server.abort();
}
