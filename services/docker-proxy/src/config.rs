//! The docker-proxy service's settings (`FLEET_DOCKER_PROXY_*`) on top of the common ones.

use std::{
    net::{IpAddr, Ipv4Addr},
    ops::RangeInclusive,
    path::PathBuf,
    time::Duration,
};

use fleet_shared::{
    catalog,
    config::{CommonConfig, ConfigError, EnvReader},
    service::ServiceConfig,
};
use ipnet::IpNet;

/// The apps' endpoints' ports unless `FLEET_DOCKER_PROXY_ENDPOINT_PORTS` says otherwise.
pub const DEFAULT_ENDPOINT_PORTS: RangeInclusive<u16> = 50600..=50999;
/// The network apps' containers are put on unless `FLEET_DOCKER_PROXY_NETWORK` says otherwise.
pub const DEFAULT_NETWORK: &str = "fleet-apps";

/// Everything the service needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Settings every service has.
    pub common: CommonConfig,
    /// `FLEET_DOCKER_PROXY_ENGINE_SOCKET`: the Docker Engine's API socket (required; only this
    /// service may reach it).
    pub engine_socket: PathBuf,
    /// `FLEET_DOCKER_PROXY_STATE_DIR`: where the endpoints' table lives (required; replicas
    /// share it).
    pub state_dir: PathBuf,
    /// `FLEET_DOCKER_PROXY_NETWORK`: the engine network every app container is put on
    /// (default `fleet-apps`, created when missing).
    pub network: String,
    /// `FLEET_DOCKER_PROXY_ENDPOINT_LISTEN`: the address the apps' endpoints listen on
    /// (default `127.0.0.1`).
    pub endpoint_listen: IpAddr,
    /// `FLEET_DOCKER_PROXY_ENDPOINT_HOST`: the name or address apps reach the endpoints by, in
    /// `CLOUDRON_DOCKER_HOST` (default the listen address; required when that is `0.0.0.0`).
    pub endpoint_host: String,
    /// `FLEET_DOCKER_PROXY_ENDPOINT_PORTS`: the ports endpoints are given, `first-last`
    /// (default `50600-50999`, one per app).
    pub endpoint_ports: RangeInclusive<u16>,
    /// `FLEET_DOCKER_PROXY_ALLOW_FROM`: comma-separated networks (CIDR) connections to an
    /// endpoint may come from (default: anywhere). Containers on the apps' network are refused
    /// whatever this says.
    pub allow_from: Vec<IpNet>,
    /// `FLEET_DOCKER_PROXY_APPS_DATA_DIR`: the apps' data directories as this service sees them,
    /// `<dir>/<app id>/data` being an app's `/app/data` (unset: no bind mounts at all).
    pub apps_data_dir: Option<PathBuf>,
    /// `FLEET_DOCKER_PROXY_APPS_DATA_HOST_DIR`: the same directory as the engine sees it
    /// (default the same path; differs when this service runs in a container).
    pub apps_data_host_dir: Option<PathBuf>,
    /// `FLEET_DOCKER_PROXY_ALLOW_PUBLISHED_PORTS`: whether apps may publish container ports on
    /// the engine's host (default `false`).
    pub allow_published_ports: bool,
    /// `FLEET_DOCKER_PROXY_MAX_CONNECTIONS_PER_APP`: open connections one app's endpoint
    /// serves at once (default 64); more wait for one to close.
    pub max_connections_per_app: usize,
    /// `FLEET_DOCKER_PROXY_IDLE_SECS`: how long a connection may wait for its next request
    /// headers (default 60).
    pub idle_timeout: Duration,
}

impl ServiceConfig for Config {
    /// Reads and validates the environment, reporting every problem at once.
    fn from_env(env: EnvReader) -> Result<Self, ConfigError> {
        let mut env = env;
        let common = CommonConfig::read(&mut env, catalog::DOCKER_PROXY.default_port);
        let engine_socket = env.required(
            "FLEET_DOCKER_PROXY_ENGINE_SOCKET",
            "path of the Docker Engine's API socket",
        );
        let state_dir = env.required(
            "FLEET_DOCKER_PROXY_STATE_DIR",
            "directory of the endpoints' table (shared by replicas)",
        );
        let network = env
            .optional("FLEET_DOCKER_PROXY_NETWORK")
            .unwrap_or_else(|| DEFAULT_NETWORK.to_owned());
        if !is_network_name(&network) {
            env.problem(format!(
                "FLEET_DOCKER_PROXY_NETWORK must be a network name of [A-Za-z0-9_.-], \
                 not host, none or bridge: {network:?}"
            ));
        }
        let endpoint_listen: IpAddr = env.parsed(
            "FLEET_DOCKER_PROXY_ENDPOINT_LISTEN",
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        );
        let endpoint_host = match env.optional("FLEET_DOCKER_PROXY_ENDPOINT_HOST") {
            Some(host) => host,
            None if endpoint_listen.is_unspecified() => {
                env.problem(
                    "FLEET_DOCKER_PROXY_ENDPOINT_HOST is required when the endpoints listen on \
                     every address: apps need a name to reach them by"
                        .to_owned(),
                );
                String::new()
            }
            None => endpoint_listen.to_string(),
        };
        let endpoint_ports = match env.optional("FLEET_DOCKER_PROXY_ENDPOINT_PORTS") {
            None => DEFAULT_ENDPOINT_PORTS,
            Some(text) => parse_port_range(&text).unwrap_or_else(|reason| {
                env.problem(format!("FLEET_DOCKER_PROXY_ENDPOINT_PORTS: {reason}"));
                DEFAULT_ENDPOINT_PORTS
            }),
        };
        let allow_from = match env.optional("FLEET_DOCKER_PROXY_ALLOW_FROM") {
            None => Vec::new(),
            Some(text) => parse_networks(&text).unwrap_or_else(|reason| {
                env.problem(format!("FLEET_DOCKER_PROXY_ALLOW_FROM: {reason}"));
                Vec::new()
            }),
        };
        let apps_data_dir = env
            .optional("FLEET_DOCKER_PROXY_APPS_DATA_DIR")
            .map(PathBuf::from);
        let apps_data_host_dir = env
            .optional("FLEET_DOCKER_PROXY_APPS_DATA_HOST_DIR")
            .map(PathBuf::from)
            .or_else(|| apps_data_dir.clone());
        for (name, dir) in [
            ("FLEET_DOCKER_PROXY_APPS_DATA_DIR", &apps_data_dir),
            ("FLEET_DOCKER_PROXY_APPS_DATA_HOST_DIR", &apps_data_host_dir),
        ] {
            if dir.as_ref().is_some_and(|d| !d.is_absolute()) {
                env.problem(format!("{name} must be an absolute path"));
            }
        }
        if apps_data_dir.is_none() && apps_data_host_dir.is_some() {
            env.problem(
                "FLEET_DOCKER_PROXY_APPS_DATA_HOST_DIR needs FLEET_DOCKER_PROXY_APPS_DATA_DIR"
                    .to_owned(),
            );
        }
        let allow_published_ports = env.parsed("FLEET_DOCKER_PROXY_ALLOW_PUBLISHED_PORTS", false);
        let max_connections_per_app: usize =
            env.parsed("FLEET_DOCKER_PROXY_MAX_CONNECTIONS_PER_APP", 64);
        if max_connections_per_app == 0 {
            env.problem("FLEET_DOCKER_PROXY_MAX_CONNECTIONS_PER_APP must be at least 1".to_owned());
        }
        let idle_timeout = env.seconds("FLEET_DOCKER_PROXY_IDLE_SECS", Duration::from_secs(60));
        env.finish()?;
        let (Some(common), Some(engine_socket), Some(state_dir)) =
            (common, engine_socket, state_dir)
        else {
            return Err(ConfigError(vec!["incomplete configuration".to_owned()]));
        };
        Ok(Self {
            common,
            engine_socket: PathBuf::from(engine_socket),
            state_dir: PathBuf::from(state_dir),
            network,
            endpoint_listen,
            endpoint_host,
            endpoint_ports,
            allow_from,
            apps_data_dir,
            apps_data_host_dir,
            allow_published_ports,
            max_connections_per_app,
            idle_timeout,
        })
    }

    fn common(&self) -> &CommonConfig {
        &self.common
    }
}

/// Whether `name` can name the apps' network: a plain engine network name, not one of the
/// engine's special modes.
fn is_network_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        && !matches!(name, "host" | "none" | "bridge" | "default")
}

/// `first-last` as a range of at least one non-zero port.
fn parse_port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("expected first-last, got {text:?}"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port"))
    };
    let (first, last) = (port(first)?, port(last)?);
    if first > last {
        return Err(format!("{first} comes after {last}"));
    }
    Ok(first..=last)
}

/// A comma-separated list of CIDR networks (a bare address is a /32 or /128).
fn parse_networks(text: &str) -> Result<Vec<IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not a network (CIDR) or an address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("50600-50601"), Ok(50600..=50601));
        assert_eq!(parse_port_range("7-7"), Ok(7..=7));
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("10-9").is_err());
        assert!(parse_port_range("10").is_err());
        assert!(parse_port_range("a-b").is_err());
    }

    #[test]
    fn networks() {
        let nets = parse_networks("10.0.0.0/8, 192.168.1.7,::1").unwrap();
        assert_eq!(nets.len(), 3);
        assert!(nets[1].contains(&"192.168.1.7".parse::<IpAddr>().unwrap()));
        assert!(parse_networks("10.0.0.0/33").is_err());
        assert!(parse_networks("example.com").is_err());
    }

    #[test]
    fn network_names() {
        assert!(is_network_name("fleet-apps"));
        for bad in ["host", "none", "bridge", "", "a b", "container:x"] {
            assert!(!is_network_name(bad), "{bad}");
        }
    }
}
