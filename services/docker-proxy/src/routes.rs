//! Which Docker API calls an app may make, by method and path: deny by default. Every call
//! the proxy forwards is one of [`Route`]'s cases; everything else is refused with a message
//! naming the call.

use hyper::Method;

/// A call the proxy lets through, once its checks pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/_ping`, `/version`, `/info`: about the engine, nothing of other apps'.
    Engine,
    /// `GET /images/json`, `GET /images/{name}/json`: images are shared and read-only here.
    Images,
    /// `GET /containers/json`: filtered to the app's containers.
    ListContainers,
    /// `POST /containers/create`: the body is checked and rewritten.
    CreateContainer,
    /// A call on one container, which must be the app's.
    Container {
        /// The id or name as the app gave it.
        id: String,
        /// What is done to it.
        action: ContainerAction,
    },
    /// A call on an exec instance, whose container must be the app's.
    Exec {
        /// The exec id as the app gave it.
        id: String,
        /// What is done to it.
        action: ExecAction,
    },
    /// `GET /events`: filtered to the app's containers.
    Events,
}

/// A call on one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerAction {
    Inspect,
    Start,
    Stop,
    Restart,
    Kill,
    Wait,
    Logs,
    Attach,
    Resize,
    Top,
    Stats,
    Remove,
    /// `POST /containers/{id}/exec`: the body is checked too.
    CreateExec,
}

impl ContainerAction {
    /// Whether the engine may answer by taking over the connection (attach).
    pub fn upgrades(self) -> bool {
        matches!(self, Self::Attach)
    }
}

/// A call on an exec instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecAction {
    Start,
    Resize,
    Inspect,
}

/// A call the proxy does not let through, and why, in words for the app's developer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// The call `method path` (path without the query) as a [`Route`], or why it is refused.
pub fn classify(method: &Method, path: &str) -> Result<Route, Refused> {
    let path = strip_version(path);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Nothing the engine would resolve to another path: dot segments, empty segments,
    // percent-encoding (no name or id of the API has a `%`).
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == ".." || s.contains('%'))
    {
        return Err(Refused(format!(
            "the path {path:?} is not allowed: no '.', '..', empty or percent-encoded parts"
        )));
    }
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    let route = match (segments.as_slice(), get, post) {
        (["_ping"], _, _) if get => Route::Engine,
        (["version"] | ["info"], true, _) => Route::Engine,
        (["images", "json"], true, _) => Route::Images,
        (["images", name @ .., "json"], true, _) if !name.is_empty() => Route::Images,
        (["containers", "json"], true, _) => Route::ListContainers,
        (["containers", "create"], _, true) => Route::CreateContainer,
        (["events"], true, _) => Route::Events,
        (["containers", id], _, _) if method == Method::DELETE => {
            container(id, ContainerAction::Remove)?
        }
        (["containers", id, action], get, post) => {
            let action = match (*action, get, post) {
                ("json", true, _) => ContainerAction::Inspect,
                ("logs", true, _) => ContainerAction::Logs,
                ("top", true, _) => ContainerAction::Top,
                ("stats", true, _) => ContainerAction::Stats,
                ("start", _, true) => ContainerAction::Start,
                ("stop", _, true) => ContainerAction::Stop,
                ("restart", _, true) => ContainerAction::Restart,
                ("kill", _, true) => ContainerAction::Kill,
                ("wait", _, true) => ContainerAction::Wait,
                ("attach", _, true) => ContainerAction::Attach,
                ("resize", _, true) => ContainerAction::Resize,
                ("exec", _, true) => ContainerAction::CreateExec,
                _ => return Err(refused(method, path)),
            };
            container(id, action)?
        }
        (["exec", id, action], get, post) => {
            let action = match (*action, get, post) {
                ("start", _, true) => ExecAction::Start,
                ("resize", _, true) => ExecAction::Resize,
                ("json", true, _) => ExecAction::Inspect,
                _ => return Err(refused(method, path)),
            };
            Route::Exec {
                id: id_segment(id)?,
                action,
            }
        }
        _ => return Err(refused(method, path)),
    };
    Ok(route)
}

/// The path without its API version prefix (`/v1.41/containers/json` → `/containers/json`).
pub fn strip_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    let is_version = !version.is_empty()
        && version.split('.').count() == 2
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if is_version { &rest[end..] } else { path }
}

fn container(id: &str, action: ContainerAction) -> Result<Route, Refused> {
    Ok(Route::Container {
        id: id_segment(id)?,
        action,
    })
}

/// A container or exec id or name: what the engine accepts, nothing that could change the path.
fn id_segment(id: &str) -> Result<String, Refused> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(id.to_owned())
    } else {
        Err(Refused(format!("{id:?} is not a container or exec id")))
    }
}

fn refused(method: &Method, path: &str) -> Refused {
    let what = match path.trim_start_matches('/').split('/').next() {
        Some("build" | "session" | "grpc") => "building images",
        Some("images") => "changing, pulling or pushing images",
        Some("plugins") => "plugins",
        Some("swarm" | "nodes" | "services" | "tasks" | "secrets" | "configs") => {
            "swarm (nodes, services, tasks, secrets, configs)"
        }
        Some("networks") => "networks",
        Some("volumes") => "volumes",
        Some("commit") => "committing containers",
        Some("system" | "auth" | "distribution") => "this engine-wide call",
        _ => "this call",
    };
    Refused(format!(
        "{what} is not allowed through the fleet's Docker proxy ({method} {path}); an app may \
         run, inspect, exec into, log and remove its own containers"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn route(method: Method, path: &str) -> Result<Route, Refused> {
        classify(&method, path)
    }

    #[test]
    fn versions_are_stripped() {
        assert_eq!(strip_version("/v1.41/containers/json"), "/containers/json");
        assert_eq!(strip_version("/containers/json"), "/containers/json");
        assert_eq!(strip_version("/v1/containers"), "/v1/containers");
        assert_eq!(strip_version("/version"), "/version");
    }

    #[test]
    fn the_app_s_calls_pass() {
        assert_eq!(route(Method::HEAD, "/_ping"), Ok(Route::Engine));
        assert_eq!(route(Method::GET, "/v1.41/version"), Ok(Route::Engine));
        assert_eq!(route(Method::GET, "/images/json"), Ok(Route::Images));
        assert_eq!(
            route(Method::GET, "/v1.50/images/fleet-test/busybox:latest/json"),
            Ok(Route::Images)
        );
        assert_eq!(
            route(Method::POST, "/v1.41/containers/create"),
            Ok(Route::CreateContainer)
        );
        assert_eq!(
            route(Method::POST, "/containers/abc/attach"),
            Ok(Route::Container {
                id: "abc".into(),
                action: ContainerAction::Attach
            })
        );
        assert_eq!(
            route(Method::DELETE, "/containers/my-box"),
            Ok(Route::Container {
                id: "my-box".into(),
                action: ContainerAction::Remove
            })
        );
        assert_eq!(
            route(Method::POST, "/exec/e1/start"),
            Ok(Route::Exec {
                id: "e1".into(),
                action: ExecAction::Start
            })
        );
    }

    #[test]
    fn everything_else_is_refused() {
        for (method, path) in [
            (Method::POST, "/build"),
            (Method::POST, "/images/create"),
            (Method::DELETE, "/images/busybox"),
            (Method::GET, "/plugins"),
            (Method::POST, "/swarm/init"),
            (Method::GET, "/services"),
            (Method::POST, "/secrets/create"),
            (Method::GET, "/configs"),
            (Method::POST, "/commit"),
            (Method::POST, "/networks/n/connect"),
            (Method::POST, "/volumes/create"),
            (Method::GET, "/containers/x/archive"),
            (Method::PUT, "/containers/x/archive"),
            (Method::GET, "/containers/x/export"),
            (Method::POST, "/containers/x/update"),
            (Method::POST, "/containers/x/rename"),
            (Method::POST, "/containers/prune"),
            (Method::GET, "/containers/x/changes"),
            (Method::POST, "/containers/json"),
            (Method::GET, "/system/df"),
            (Method::POST, "/auth"),
            (Method::GET, "/containers/../../info"),
        ] {
            assert!(route(method.clone(), path).is_err(), "{method} {path}");
        }
        let message = route(Method::POST, "/v1.41/build").unwrap_err().0;
        assert!(
            message.starts_with("building images is not allowed"),
            "{message}"
        );
    }

    #[test]
    fn ids_and_names_cannot_change_the_path() {
        for path in [
            "/containers/%2e%2e/json",
            "/containers//json",
            "/images/../containers/victim/json",
            "/images/./../containers/victim/json",
            "/images/%2e%2e/containers/victim/json",
            "/v1.41/images/a/../../containers/victim/export/json",
        ] {
            let refused = route(Method::GET, path);
            assert!(refused.is_err(), "{path}: {refused:?}");
        }
    }
}
