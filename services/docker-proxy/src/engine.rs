//! The Docker Engine behind the proxy: one HTTP/1.1 connection to its socket per request
//! (forwarded calls, with upgrades for attach and exec), and the service's own calls as JSON:
//! who owns a container, the apps' containers and their removal, the apps' network.

use std::{collections::BTreeSet, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use fleet_shared::error::AddonError;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::{Method, Request, Response, StatusCode, body::Incoming};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use serde_json::{Value, json};
use tokio::net::UnixStream;

use crate::create::{APP_LABEL, SEAL_LABEL};

/// A request body of any kind.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// How long the service's own calls may take (forwarded calls have no limit: `logs -f`).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the engine did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Its socket cannot be reached, or it broke the connection.
    #[error("the Docker Engine cannot be reached at {socket}: {reason}")]
    Unreachable { socket: String, reason: String },
    /// It answered with an error status.
    #[error("the Docker Engine answered {status}: {message}")]
    Status { status: StatusCode, message: String },
}

impl EngineError {
    /// Whether the engine said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }
}

impl From<EngineError> for AddonError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Unreachable { .. } => AddonError::Unavailable(format!(
                "{error}; check that dockerd runs and FLEET_DOCKER_PROXY_ENGINE_SOCKET"
            )),
            EngineError::Status { .. } => AddonError::Internal(error.to_string()),
        }
    }
}

/// A container of the engine that carries [`APP_LABEL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    /// Its full id.
    pub id: String,
    /// The app its label names.
    pub app: String,
    /// Its [`SEAL_LABEL`], if any.
    pub seal: Option<String>,
}

/// The engine at one socket.
#[derive(Debug, Clone)]
pub struct Engine {
    socket: PathBuf,
    /// Held while the apps' network is looked up and made.
    network_lock: Arc<tokio::sync::Mutex<()>>,
}

impl Engine {
    /// The engine listening on `socket`.
    pub fn new(socket: PathBuf) -> Self {
        Self {
            socket,
            network_lock: Arc::default(),
        }
    }

    fn unreachable(&self, reason: impl ToString) -> EngineError {
        EngineError::Unreachable {
            socket: self.socket.display().to_string(),
            reason: reason.to_string(),
        }
    }

    /// Sends `request` on a new connection of its own, which stays open as long as the
    /// response (or the connection it upgrades to) is used.
    pub async fn send(
        &self,
        mut request: Request<Body>,
    ) -> Result<Response<Incoming>, EngineError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.unreachable(e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(e))?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "engine connection ended");
            }
        });
        request.headers_mut().insert(
            hyper::header::HOST,
            hyper::header::HeaderValue::from_static("docker"),
        );
        sender
            .send_request(request)
            .await
            .map_err(|e| self.unreachable(e))
    }

    /// The service's own call: `method path` with a JSON body, the JSON answer (`Null` when
    /// it has none).
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, EngineError> {
        let body = match body {
            Some(value) => Full::new(Bytes::from(value.to_string())),
            None => Full::new(Bytes::new()),
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(body.map_err(|never| match never {}).boxed())
            .map_err(|e| self.unreachable(e))?;
        let exchange = async {
            let response = self.send(request).await?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| self.unreachable(e))?
                .to_bytes();
            Ok::<_, EngineError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| self.unreachable("no answer in 30 s"))??;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&bytes).trim().to_owned())
            })
        };
        if status.is_success() {
            Ok(value)
        } else {
            let message = value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            Err(EngineError::Status { status, message })
        }
    }

    /// Whether the engine answers `/_ping`.
    pub async fn ping(&self) -> Result<(), EngineError> {
        self.call(Method::GET, "/_ping", None).await.map(drop)
    }

    /// The container `id` (or name) as the engine describes it, `None` if it does not exist.
    pub async fn inspect_container(&self, id: &str) -> Result<Option<Value>, EngineError> {
        match self
            .call(Method::GET, &format!("/containers/{id}/json"), None)
            .await
        {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The container the exec instance `id` runs in, `None` if there is no such instance.
    pub async fn exec_container(&self, id: &str) -> Result<Option<String>, EngineError> {
        match self
            .call(Method::GET, &format!("/exec/{id}/json"), None)
            .await
        {
            Ok(value) => Ok(value
                .get("ContainerID")
                .and_then(Value::as_str)
                .map(str::to_owned)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every container (running or not) carrying [`APP_LABEL`], or only `app`'s.
    pub async fn labelled(&self, app: Option<&str>) -> Result<Vec<Labelled>, EngineError> {
        let label = match app {
            Some(app) => format!("{APP_LABEL}={app}"),
            None => APP_LABEL.to_owned(),
        };
        let filters = json!({ "label": [label] }).to_string();
        let path = format!("/containers/json?all=1&filters={}", encode_query(&filters));
        let listed = self.call(Method::GET, &path, None).await?;
        let containers = listed.as_array().cloned().unwrap_or_default();
        Ok(containers
            .iter()
            .filter_map(|c| {
                let labels = c.get("Labels")?;
                Some(Labelled {
                    id: c.get("Id")?.as_str()?.to_owned(),
                    app: labels.get(APP_LABEL)?.as_str()?.to_owned(),
                    seal: labels
                        .get(SEAL_LABEL)
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
            })
            .collect())
    }

    /// Removes container `id` whatever its state, with its anonymous volumes; succeeds if it
    /// is gone.
    pub async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let path = format!("/containers/{id}?force=1&v=1");
        match self.call(Method::DELETE, &path, None).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            // "removal already in progress": another call is removing it.
            Err(EngineError::Status { status, .. }) if status == StatusCode::CONFLICT => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The networks named exactly `name`, oldest first.
    async fn networks_named(&self, name: &str) -> Result<Vec<Value>, EngineError> {
        let filters = json!({ "name": [name] }).to_string();
        let path = format!("/networks?filters={}", encode_query(&filters));
        let listed = self.call(Method::GET, &path, None).await?;
        let mut named: Vec<Value> = listed
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n.get("Name").and_then(Value::as_str) == Some(name))
            .cloned()
            .collect();
        let key = |n: &Value| {
            let field = |f: &str| n.get(f).and_then(Value::as_str).unwrap_or("").to_owned();
            (field("Created"), field("Id"))
        };
        named.sort_by_key(key);
        Ok(named)
    }

    /// The subnets of network `name`, which is created (a bridge labelled as the fleet's) when
    /// missing. The engine does not stop two creations of one name at once (replicas starting
    /// together): the oldest network of the name is kept and the others are removed.
    pub async fn ensure_network(&self, name: &str) -> Result<Vec<IpNet>, EngineError> {
        let _one_at_a_time = self.network_lock.lock().await;
        let mut named = self.networks_named(name).await?;
        if named.is_empty() {
            let create = json!({
                "Name": name,
                "Driver": "bridge",
                "CheckDuplicate": true,
                "Labels": { "fleet.docker.network": "apps" },
            });
            match self
                .call(Method::POST, "/networks/create", Some(create))
                .await
            {
                Ok(_) => tracing::info!(network = name, "created the apps' network"),
                // Another replica created it first.
                Err(EngineError::Status { status, .. }) if status == StatusCode::CONFLICT => {}
                Err(e) => return Err(e),
            }
            named = self.networks_named(name).await?;
        }
        for extra in named.iter().skip(1) {
            if let Some(id) = extra.get("Id").and_then(Value::as_str) {
                let removed = self
                    .call(Method::DELETE, &format!("/networks/{id}"), None)
                    .await;
                tracing::info!(
                    network = name,
                    id,
                    removed = removed.is_ok(),
                    "a second network of the name"
                );
            }
        }
        let subnets = named
            .first()
            .and_then(|n| n.pointer("/IPAM/Config"))
            .and_then(Value::as_array)
            .map(|configs| {
                configs
                    .iter()
                    .filter_map(|c| c.get("Subnet")?.as_str()?.parse::<IpNet>().ok())
                    .collect()
            })
            .unwrap_or_default();
        Ok(subnets)
    }
}

/// `text` percent-encoded for a query value.
pub fn encode_query(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The app ids of `containers`, sorted, without repeats.
pub fn apps_of(containers: &[Labelled]) -> BTreeSet<String> {
    containers.iter().map(|c| c.app.clone()).collect()
}
