//! One hundred apps, each with its own redis-server: provisioning time and memory.
//!
//!     cargo bench -p fleet-redis --bench instances [-- APPS]
//!
//! Provisions APPS (default 100) apps through the service (in-process, over gRPC), writes one
//! key to each, then reads every instance's proportional set size (PSS, which splits shared
//! pages fairly between processes) from /proc/<pid>/smaps_rollup, and the RSS for comparison.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fleet_shared::{
    proto::addon::{ProvisionRequest, RedisOptions, provision_request::Options},
    testkit::{
        bench::Samples,
        harness::{InProcess, TestSecrets, addon_client},
    },
};

fn main() {
    let apps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(apps));
}

async fn bench(apps: usize) {
    let secrets = TestSecrets::new().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut env = secrets.common_env();
    for (key, value) in [
        ("FLEET_REDIS_DATA_DIR", data.path().display().to_string()),
        ("FLEET_REDIS_PORTS", "21000-21999".to_owned()),
        ("FLEET_REDIS_STOP_INSTANCES_ON_EXIT", "true".to_owned()),
        ("FLEET_LOG", "warn".to_owned()),
    ] {
        env.push((key.to_owned(), value));
    }
    let service = InProcess::serve::<fleet_redis::Service>(env).await.unwrap();
    let mut client = addon_client(service.addr.port(), Some(&secrets.token))
        .await
        .unwrap();

    let mut provisioning = Samples::default();
    for index in 0..apps {
        let request = ProvisionRequest {
            app_id: format!("bench-{index}"),
            app_domain: String::new(),
            credential_generation: 0,
            options: Some(Options::Redis(RedisOptions { no_password: false })),
        };
        let env = provisioning
            .time(client.provision(request))
            .await
            .unwrap()
            .into_inner()
            .env;
        let mut conn = redis::Client::open(env["CLOUDRON_REDIS_URL"].as_str())
            .unwrap()
            .get_connection()
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg(index)
            .query(&mut conn)
            .unwrap();
    }

    let (mut pss, mut rss, mut counted) = (0_u64, 0_u64, 0_u64);
    for entry in std::fs::read_dir(data.path())
        .unwrap()
        .filter_map(Result::ok)
    {
        let Some(pid) = server_in(&entry.path()) else {
            continue;
        };
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap();
        let field = |name: &str| {
            rollup
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .unwrap_or(0)
        };
        pss += field("Pss:");
        rss += field("Rss:");
        counted += 1;
    }
    println!("{apps} redis instances, one per app:");
    println!("{}", provisioning.report("Provision (new instance)"));
    println!(
        "  memory: PSS {:.1} MiB in all, {:.2} MiB per instance (RSS {:.2} MiB per instance; {counted} measured)",
        pss as f64 / 1024.0,
        pss as f64 / 1024.0 / counted.max(1) as f64,
        rss as f64 / 1024.0 / counted.max(1) as f64
    );
    service.stop().await;
}

/// The redis-server working in `dir` (the service keeps no pid files), from /proc.
fn server_in(dir: &std::path::Path) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == "redis-server")
                && std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == dir)
        })
}
