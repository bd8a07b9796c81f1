//! The `fleet.coordinator.v1.Coordinator` implementation: convert, call the domain, map errors.

use std::sync::Arc;

use fleet_shared::{
    env_bundle::EnvBundle,
    proto::coordinator::{
        App, Ftp, GetAppRequest, GetAppResponse, GetFleetStatusRequest, GetFleetStatusResponse,
        InstallAppRequest, InstallAppResponse, ListAppsRequest, ListAppsResponse, LocalStorage,
        ProxyAuth, ScheduledTask, StartAppRequest, StartAppResponse, Tls, UninstallAppRequest,
        UninstallAppResponse, UpdateAppRequest, UpdateAppResponse,
        coordinator_server::Coordinator as CoordinatorApi,
    },
    server::to_completion,
};
use tonic::{Request, Response, Status};

use crate::{
    coordinator::{AppPage, Coordinator, InstalledApp, ListedApp},
    error::Error,
    manifest::{self, json},
};

/// The gRPC face of the [`Coordinator`].
#[derive(Clone)]
pub struct CoordinatorService {
    coordinator: Arc<Coordinator>,
}

impl CoordinatorService {
    pub fn new(coordinator: Arc<Coordinator>) -> Self {
        Self { coordinator }
    }
}

/// Runs a domain call on its own task, so a caller hanging up cannot stop it half-way.
async fn complete<T: Send + 'static>(
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Status> {
    Ok(to_completion(work).await.map_err(Error::from)??)
}

#[tonic::async_trait]
impl CoordinatorApi for CoordinatorService {
    async fn install_app(
        &self,
        request: Request<InstallAppRequest>,
    ) -> Result<Response<InstallAppResponse>, Status> {
        let InstallAppRequest {
            app_id,
            app_domain,
            addons,
        } = request.into_inner();
        let coordinator = Arc::clone(&self.coordinator);
        let (app, env) = complete(async move {
            coordinator
                .install(&app_id, &app_domain, &addons.unwrap_or_default())
                .await
        })
        .await?;
        Ok(Response::new(InstallAppResponse {
            app: Some(to_proto(app)),
            env: to_map(env),
        }))
    }

    async fn update_app(
        &self,
        request: Request<UpdateAppRequest>,
    ) -> Result<Response<UpdateAppResponse>, Status> {
        let UpdateAppRequest { app_id, addons } = request.into_inner();
        let coordinator = Arc::clone(&self.coordinator);
        let (app, env) = complete(async move {
            coordinator
                .update(&app_id, &addons.unwrap_or_default())
                .await
        })
        .await?;
        Ok(Response::new(UpdateAppResponse {
            app: Some(to_proto(app)),
            env: to_map(env),
        }))
    }

    async fn start_app(
        &self,
        request: Request<StartAppRequest>,
    ) -> Result<Response<StartAppResponse>, Status> {
        let StartAppRequest { app_id } = request.into_inner();
        let coordinator = Arc::clone(&self.coordinator);
        let (app, env) = complete(async move { coordinator.start(&app_id).await }).await?;
        Ok(Response::new(StartAppResponse {
            app: Some(to_proto(app)),
            env: to_map(env),
        }))
    }

    async fn get_app(
        &self,
        request: Request<GetAppRequest>,
    ) -> Result<Response<GetAppResponse>, Status> {
        let GetAppRequest { app_id } = request.into_inner();
        let app = self.coordinator.get(&app_id).await?;
        Ok(Response::new(GetAppResponse {
            app: Some(to_proto(app)),
        }))
    }

    async fn list_apps(
        &self,
        request: Request<ListAppsRequest>,
    ) -> Result<Response<ListAppsResponse>, Status> {
        let ListAppsRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let AppPage {
            apps,
            next_page_token,
        } = self.coordinator.list(page_size, &page_token).await?;
        Ok(Response::new(ListAppsResponse {
            apps: apps.into_iter().map(listed_to_proto).collect(),
            next_page_token,
        }))
    }

    async fn uninstall_app(
        &self,
        request: Request<UninstallAppRequest>,
    ) -> Result<Response<UninstallAppResponse>, Status> {
        let UninstallAppRequest { app_id } = request.into_inner();
        let coordinator = Arc::clone(&self.coordinator);
        complete(async move { coordinator.uninstall(&app_id).await }).await?;
        Ok(Response::new(UninstallAppResponse {}))
    }

    async fn get_fleet_status(
        &self,
        request: Request<GetFleetStatusRequest>,
    ) -> Result<Response<GetFleetStatusResponse>, Status> {
        let GetFleetStatusRequest {} = request.into_inner();
        Ok(Response::new(GetFleetStatusResponse {
            services: self.coordinator.fleet().statuses(),
        }))
    }
}

fn to_map(env: EnvBundle) -> std::collections::HashMap<String, String> {
    env.into_iter().collect()
}

/// The wire form of an installed app: what the orchestrator must act on, no secrets.
fn to_proto(app: InstalledApp) -> App {
    let InstalledApp { record, manifest } = app;
    app_proto(
        record.app_id,
        record.app_domain,
        json::to_struct(&record.addons),
        manifest,
    )
}

/// A listed app: as installed, or with the problem of its unreadable record.
fn listed_to_proto(app: ListedApp) -> App {
    let ListedApp {
        app_id,
        app_domain,
        manifest,
    } = app;
    match manifest {
        Ok(parsed) => app_proto(
            app_id,
            app_domain,
            Some(parsed.addons.clone()),
            parsed.manifest.clone(),
        ),
        Err(problem) => App {
            app_id,
            app_domain,
            problem,
            ..App::default()
        },
    }
}

fn app_proto(
    app_id: String,
    app_domain: String,
    addons: Option<prost_types::Struct>,
    manifest: manifest::Manifest,
) -> App {
    let manifest::Manifest {
        provisioned,
        local_storage,
        scheduled_tasks,
        tls,
        proxy_auth,
    } = manifest;
    App {
        app_id,
        app_domain,
        addons,
        provisioned_addons: provisioned.keys().map(|a| (*a).to_owned()).collect(),
        local_storage: local_storage.map(|storage| LocalStorage {
            enabled: true,
            ftp: storage.ftp.map(|(uid, uname)| Ftp { uid, uname }),
        }),
        scheduled_tasks: scheduled_tasks
            .into_iter()
            .map(|(name, task)| ScheduledTask {
                name,
                schedule: task.schedule,
                command: task.command,
            })
            .collect(),
        tls: tls.then(|| Tls {
            enabled: true,
            cert_path: manifest::TLS_CERT_PATH.to_owned(),
            key_path: manifest::TLS_KEY_PATH.to_owned(),
        }),
        proxy_auth: proxy_auth.map(|auth| ProxyAuth {
            enabled: true,
            path: auth.path,
            basic_auth: auth.basic_auth,
            supports_bearer_auth: auth.supports_bearer_auth,
        }),
        problem: String::new(),
    }
}
