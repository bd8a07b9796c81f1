//! One call on an app's endpoint, from the app's request to the engine's answer: the endpoint
//! must still be the app's, the call one of [`crate::routes`]'s, every container or exec it
//! names the app's own (else 404, as if it did not exist), lists and events filtered to the
//! app's containers, create bodies checked and rewritten ([`crate::create`]); then the call is
//! forwarded on a connection of its own, streams and upgraded connections (attach, exec) passed
//! through both ways.

use std::{net::IpAddr, path::PathBuf, sync::RwLock};

use bytes::Bytes;
use fleet_shared::{AppId, credentials::MasterKey};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    http::request::Parts,
    upgrade::OnUpgrade,
};
use hyper_util::rt::TokioIo;
use ipnet::IpNet;
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use crate::{
    create::{self, APP_LABEL, DataDir, SEAL_LABEL, Scope},
    engine::{Body, Engine},
    routes::{self, ContainerAction, ExecAction, Refused, Route},
    store::{Endpoint, Endpoints},
};

/// The largest create body read (a container's configuration is a few kilobytes).
const MAX_BODY: usize = 1 << 20;

/// An answer the proxy gives itself, in the engine's error format (`{"message": ...}`), which
/// Docker clients print as "Error response from daemon: ...".
#[derive(Debug)]
pub struct Reply {
    status: StatusCode,
    message: String,
}

impl Reply {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn no_such_container(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("No such container: {id}"))
    }

    /// This reply as a response.
    pub fn into_response(self) -> Response<Body> {
        let body = json!({ "message": self.message }).to_string();
        let mut response = Response::new(full(Bytes::from(body)));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl From<Refused> for Reply {
    fn from(Refused(message): Refused) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

fn engine_down(error: impl std::fmt::Display) -> Reply {
    tracing::warn!(%error, "the engine failed a call on an endpoint");
    Reply::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the Docker Engine behind the fleet's proxy cannot be reached; try again later",
    )
}

/// What every endpoint shares.
pub struct Proxy {
    engine: Engine,
    endpoints: Endpoints,
    master_key: MasterKey,
    network: String,
    apps_data: Option<(PathBuf, PathBuf)>,
    allow_published_ports: bool,
    allow_from: Vec<IpNet>,
    /// The apps' network's subnets, once the engine told them: connections from there (the
    /// apps' containers) are refused, and all are until they are known.
    network_subnets: RwLock<Option<Vec<IpNet>>>,
}

/// How the proxy is set up (from [`crate::config::Config`]).
pub struct ProxySettings {
    pub network: String,
    pub apps_data: Option<(PathBuf, PathBuf)>,
    pub allow_published_ports: bool,
    pub allow_from: Vec<IpNet>,
}

impl Proxy {
    /// A proxy to `engine` for the endpoints of `endpoints`.
    pub fn new(
        engine: Engine,
        endpoints: Endpoints,
        master_key: MasterKey,
        settings: ProxySettings,
    ) -> Self {
        let ProxySettings {
            network,
            apps_data,
            allow_published_ports,
            allow_from,
        } = settings;
        Self {
            engine,
            endpoints,
            master_key,
            network,
            apps_data,
            allow_published_ports,
            allow_from,
            network_subnets: RwLock::new(None),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The value of [`SEAL_LABEL`] on `app`'s containers: derived from the master key, so a
    /// container someone labelled with the app's id on the engine directly is not taken for
    /// the app's.
    pub fn seal(&self, app: &AppId) -> String {
        self.master_key
            .derive_password("docker-seal", app, 0)
            .expose()
            .clone()
    }

    /// Makes sure the apps' network exists and remembers its subnets.
    pub async fn refresh_network(&self) -> Result<(), crate::engine::EngineError> {
        let subnets = self.engine.ensure_network(&self.network).await?;
        if let Ok(mut known) = self.network_subnets.write() {
            *known = Some(subnets);
        }
        Ok(())
    }

    /// Whether a connection from `peer` may use an endpoint.
    pub fn admits(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        if !self.allow_from.is_empty() && !self.allow_from.iter().any(|n| n.contains(&peer)) {
            return false;
        }
        match self.network_subnets.read() {
            Ok(known) => known
                .as_ref()
                .is_some_and(|subnets| !subnets.iter().any(|n| n.contains(&peer))),
            Err(_) => false,
        }
    }

    fn scope(&self, app: &AppId) -> Scope {
        Scope {
            app: app.as_str().to_owned(),
            seal: self.seal(app),
            network: self.network.clone(),
            data: self.apps_data.as_ref().map(|(local, host)| DataDir {
                local: local.join(app.as_str()).join("data"),
                host: host.join(app.as_str()).join("data"),
            }),
            allow_published_ports: self.allow_published_ports,
        }
    }

    /// Answers one call on `endpoint`; `closed` ends when the endpoint closes, and the
    /// streams the call leaves open end with it.
    pub async fn handle(
        &self,
        endpoint: &Endpoint,
        request: Request<Incoming>,
        closed: watch::Receiver<()>,
    ) -> Response<Body> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        match self.answer(endpoint, request, closed).await {
            Ok(response) => response,
            Err(reply) => {
                if reply.status == StatusCode::FORBIDDEN {
                    tracing::info!(app = %endpoint.app, %method, %path, reason = %reply.message, "refused");
                }
                reply.into_response()
            }
        }
    }

    async fn answer(
        &self,
        endpoint: &Endpoint,
        mut request: Request<Incoming>,
        closed: watch::Receiver<()>,
    ) -> Result<Response<Body>, Reply> {
        match self.endpoints.on_port(endpoint.port).await {
            Ok(Some(current)) if current == *endpoint => {}
            Ok(_) => {
                return Err(Reply::new(
                    StatusCode::FORBIDDEN,
                    "this Docker endpoint was closed (the app was removed or its credentials \
                     rotated); use the app's current CLOUDRON_DOCKER_HOST",
                ));
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the endpoints' table");
                return Err(Reply::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the fleet's Docker proxy cannot read its state; try again later",
                ));
            }
        }
        let app = AppId::parse(&endpoint.app)
            .map_err(|_| Reply::new(StatusCode::INTERNAL_SERVER_ERROR, "bad endpoint"))?;
        let scope = self.scope(&app);
        let route = routes::classify(request.method(), request.uri().path())?;
        let on_upgrade = Upgrade {
            client: hyper::upgrade::on(&mut request),
            closed,
        };
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let version = &path[..path.len() - routes::strip_version(&path).len()];
        let query = parts.uri.query().unwrap_or("").to_owned();
        let body: Body = body.boxed();
        match route {
            Route::Engine | Route::Images => {
                let target = with_query(path.clone(), &query);
                self.forward(parts, target, body, None).await
            }
            Route::ListContainers => {
                let query = filtered_query(&query, &scope, false)?;
                let target = with_query(format!("{version}/containers/json"), &query);
                self.forward(parts, target, body, None).await
            }
            Route::Events => {
                let query = filtered_query(&query, &scope, true)?;
                let target = with_query(format!("{version}/events"), &query);
                self.forward(parts, target, body, None).await
            }
            Route::CreateContainer => {
                only_parameters(&query, &["name", "platform"])?;
                let bytes = read_body(body).await?;
                let rewritten = create::container_create(&bytes, &scope)?;
                let target = with_query(format!("{version}/containers/create"), &query);
                self.forward_bytes(parts, target, rewritten).await
            }
            Route::Container { id, action } => {
                let full_id = self.owned_container(&id, &scope).await?;
                let target = match action {
                    ContainerAction::Remove => {
                        only_parameters(&query, &["force", "v"])?;
                        format!("{version}/containers/{full_id}")
                    }
                    _ => format!("{version}/containers/{full_id}/{}", action_path(action)),
                };
                let target = with_query(target, &query);
                if action == ContainerAction::CreateExec {
                    let bytes = read_body(body).await?;
                    create::exec_create(&bytes)?;
                    return self.forward_bytes(parts, target, bytes.to_vec()).await;
                }
                let upgrade = action.upgrades().then_some(on_upgrade);
                self.forward(parts, target, body, upgrade).await
            }
            Route::Exec { id, action } => {
                let container = self.engine.exec_container(&id).await.map_err(engine_down)?;
                let no_such = || {
                    Reply::new(
                        StatusCode::NOT_FOUND,
                        format!("No such exec instance: {id}"),
                    )
                };
                let container = container.ok_or_else(no_such)?;
                if self.owned_container(&container, &scope).await.is_err() {
                    return Err(no_such());
                }
                let (suffix, upgrade) = match action {
                    ExecAction::Start => ("start", Some(on_upgrade)),
                    ExecAction::Resize => ("resize", None),
                    ExecAction::Inspect => ("json", None),
                };
                let target = with_query(format!("{version}/exec/{id}/{suffix}"), &query);
                self.forward(parts, target, body, upgrade).await
            }
        }
    }

    /// The full id of container `id` if it is `scope`'s app's; 404 otherwise, as the engine
    /// answers for a container that does not exist.
    async fn owned_container(&self, id: &str, scope: &Scope) -> Result<String, Reply> {
        let inspected = self
            .engine
            .inspect_container(id)
            .await
            .map_err(engine_down)?
            .ok_or_else(|| Reply::no_such_container(id))?;
        let labels = inspected.pointer("/Config/Labels");
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        let owned = label(APP_LABEL) == Some(scope.app.as_str())
            && label(SEAL_LABEL) == Some(scope.seal.as_str());
        match inspected.get("Id").and_then(Value::as_str) {
            Some(full_id) if owned => Ok(full_id.to_owned()),
            _ => Err(Reply::no_such_container(id)),
        }
    }

    async fn forward_bytes(
        &self,
        mut parts: Parts,
        target: String,
        body: Vec<u8>,
    ) -> Result<Response<Body>, Reply> {
        parts.headers.remove(header::TRANSFER_ENCODING);
        parts
            .headers
            .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        self.forward(parts, target, full(Bytes::from(body)), None)
            .await
    }

    /// Sends the call to the engine as `target` and passes its answer back; when the engine
    /// takes the connection over (101), both connections are joined until either side ends.
    async fn forward(
        &self,
        parts: Parts,
        target: String,
        body: Body,
        upgrade: Option<Upgrade>,
    ) -> Result<Response<Body>, Reply> {
        let mut request = Request::builder()
            .method(parts.method)
            .uri(target)
            .body(body)
            .map_err(|e| Reply::new(StatusCode::BAD_REQUEST, format!("bad request: {e}")))?;
        *request.headers_mut() = parts.headers;
        let mut response = self.engine.send(request).await.map_err(engine_down)?;
        if response.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(Upgrade { client, mut closed }) = upgrade
        {
            let engine = hyper::upgrade::on(&mut response);
            tokio::spawn(async move {
                let (client, engine) = match tokio::try_join!(client, engine) {
                    Ok(both) => both,
                    Err(error) => {
                        tracing::debug!(%error, "an upgrade did not complete");
                        return;
                    }
                };
                let (mut client, mut engine) = (TokioIo::new(client), TokioIo::new(engine));
                tokio::select! {
                    copied = tokio::io::copy_bidirectional(&mut client, &mut engine) => {
                        if let Err(error) = copied {
                            tracing::debug!(%error, "a stream ended");
                        }
                    }
                    _ = closed.changed() => tracing::debug!("a stream ended with its endpoint"),
                }
            });
            let (parts, _) = response.into_parts();
            return Ok(Response::from_parts(parts, full(Bytes::new())));
        }
        Ok(response.map(|body| body.boxed()))
    }
}

/// The app's side of a call the engine may take over, and the end of its endpoint.
struct Upgrade {
    client: OnUpgrade,
    closed: watch::Receiver<()>,
}

/// The body of a create call, at most [`MAX_BODY`] bytes.
async fn read_body(body: Body) -> Result<Bytes, Reply> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|_| {
            Reply::new(
                StatusCode::BAD_REQUEST,
                format!("the request body is unreadable or larger than {MAX_BODY} bytes"),
            )
        })
}

fn with_query(path: String, query: &str) -> String {
    if query.is_empty() {
        path
    } else {
        format!("{path}?{query}")
    }
}

fn action_path(action: ContainerAction) -> &'static str {
    match action {
        ContainerAction::Inspect => "json",
        ContainerAction::Start => "start",
        ContainerAction::Stop => "stop",
        ContainerAction::Restart => "restart",
        ContainerAction::Kill => "kill",
        ContainerAction::Wait => "wait",
        ContainerAction::Logs => "logs",
        ContainerAction::Attach => "attach",
        ContainerAction::Resize => "resize",
        ContainerAction::Top => "top",
        ContainerAction::Stats => "stats",
        ContainerAction::CreateExec => "exec",
        ContainerAction::Remove => "",
    }
}

/// Refuses a query parameter not in `allowed` (with a true value: `link=0` is harmless).
fn only_parameters(query: &str, allowed: &[&str]) -> Result<(), Reply> {
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let off = matches!(value.as_ref(), "" | "0" | "false");
        if !allowed.contains(&key.as_ref()) && !off {
            return Err(Reply::new(
                StatusCode::FORBIDDEN,
                format!("the parameter {key:?} is not allowed here"),
            ));
        }
    }
    Ok(())
}

/// The query with its `filters` narrowed to `scope`'s app's containers (and, for events, to
/// container events).
fn filtered_query(query: &str, scope: &Scope, events: bool) -> Result<String, Reply> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut filters: Map<String, Value> = Map::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == "filters" {
            filters = normalised_filters(&value)?;
        } else {
            pairs.push((key.into_owned(), value.into_owned()));
        }
    }
    let labels = filters
        .entry("label")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(labels) = labels {
        labels.push(Value::String(format!("{APP_LABEL}={}", scope.app)));
        labels.push(Value::String(format!("{SEAL_LABEL}={}", scope.seal)));
    }
    if events {
        filters.insert("type".to_owned(), json!(["container"]));
    }
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in &pairs {
        serializer.append_pair(key, value);
    }
    serializer.append_pair("filters", &Value::Object(filters).to_string());
    Ok(serializer.finish())
}

/// Docker's filters, given as `{"key": ["value"]}` or the older `{"key": {"value": true}}`, as
/// the first form.
fn normalised_filters(text: &str) -> Result<Map<String, Value>, Reply> {
    let bad = || {
        Reply::new(
            StatusCode::BAD_REQUEST,
            "filters must be a JSON object of lists",
        )
    };
    let Value::Object(given) = serde_json::from_str::<Value>(text).map_err(|_| bad())? else {
        return Err(bad());
    };
    given
        .into_iter()
        .map(|(key, value)| {
            let values: Vec<Value> = match value {
                Value::Array(values) if values.iter().all(Value::is_string) => values,
                Value::Object(set) => set
                    .into_iter()
                    .filter(|(_, on)| on.as_bool() == Some(true))
                    .map(|(v, _)| Value::String(v))
                    .collect(),
                _ => return Err(bad()),
            };
            Ok((key, Value::Array(values)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn scope() -> Scope {
        Scope {
            app: "app1".into(),
            seal: "s".into(),
            network: "n".into(),
            data: None,
            allow_published_ports: false,
        }
    }

    fn filters_of(query: &str) -> Value {
        let (_, value) = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "filters")
            .unwrap();
        serde_json::from_str(&value).unwrap()
    }

    #[test]
    fn lists_are_narrowed_to_the_app() {
        let query = filtered_query("all=1", &scope(), false).unwrap();
        assert!(query.starts_with("all=1&"), "{query}");
        assert_eq!(
            filters_of(&query),
            json!({"label": ["fleet.docker.app=app1", "fleet.docker.seal=s"]})
        );
        let given = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("filters", r#"{"label":{"x=1":true},"status":["running"]}"#)
            .finish();
        let narrowed = filters_of(&filtered_query(&given, &scope(), false).unwrap());
        assert_eq!(
            narrowed["label"],
            json!(["x=1", "fleet.docker.app=app1", "fleet.docker.seal=s"])
        );
        assert_eq!(narrowed["status"], json!(["running"]));
        let events = filters_of(
            &filtered_query(
                &url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("filters", r#"{"type":["image","network"]}"#)
                    .finish(),
                &scope(),
                true,
            )
            .unwrap(),
        );
        assert_eq!(events["type"], json!(["container"]));
        assert!(filtered_query("filters=%5B%5D", &scope(), false).is_err());
    }

    #[test]
    fn parameters_outside_the_list_are_refused_unless_off() {
        assert!(only_parameters("force=1&v=1", &["force", "v"]).is_ok());
        assert!(only_parameters("force=1&link=0", &["force", "v"]).is_ok());
        assert!(only_parameters("link=1", &["force", "v"]).is_err());
    }
}
