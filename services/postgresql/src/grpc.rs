//! The `fleet.addon.v1.Addon` implementation: validate, convert, call the domain, map errors.

use std::sync::Arc;

use fleet_shared::{
    proto::addon::{
        DeprovisionRequest, DeprovisionResponse, ListRequest, ListResponse, ProvisionRequest,
        ProvisionResponse, addon_server::Addon,
    },
    server::to_completion,
};
use tonic::{Request, Response, Status};

use crate::{
    error::Error,
    provisioner::Provisioner,
    request::{ProvisionSpec, parse_deprovision},
};

/// The gRPC face of a [`Provisioner`].
#[derive(Debug, Clone)]
pub struct AddonService {
    provisioner: Arc<Provisioner>,
}

impl AddonService {
    /// Serves `provisioner`.
    pub fn new(provisioner: Arc<Provisioner>) -> Self {
        Self { provisioner }
    }
}

#[tonic::async_trait]
impl Addon for AddonService {
    async fn provision(
        &self,
        request: Request<ProvisionRequest>,
    ) -> Result<Response<ProvisionResponse>, Status> {
        let spec = ProvisionSpec::try_from(request.into_inner())?;
        let provisioner = Arc::clone(&self.provisioner);
        let env = to_completion(async move { provisioner.provision(&spec).await })
            .await
            .map_err(Error::from)??;
        Ok(Response::new(ProvisionResponse {
            env: env.into_iter().collect(),
        }))
    }

    async fn deprovision(
        &self,
        request: Request<DeprovisionRequest>,
    ) -> Result<Response<DeprovisionResponse>, Status> {
        let app = parse_deprovision(request.into_inner())?;
        let provisioner = Arc::clone(&self.provisioner);
        to_completion(async move { provisioner.deprovision(&app).await })
            .await
            .map_err(Error::from)??;
        Ok(Response::new(DeprovisionResponse {}))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let ListRequest {} = request.into_inner();
        let app_ids = self.provisioner.list().await?;
        Ok(Response::new(ListResponse { app_ids }))
    }
}
