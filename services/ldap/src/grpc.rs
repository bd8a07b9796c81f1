//! The `fleet.directory.v1.Directory` gRPC service: validate, convert, call
//! [`crate::directory::Directory`], map the error. Writes run to completion even if the caller
//! hangs up.

use std::sync::Arc;

use fleet_shared::{
    error::AddonError,
    proto::directory::{
        self as pb, AddMemberRequest, AddMemberResponse, CreateGroupRequest, CreateGroupResponse,
        CreateUserRequest, CreateUserResponse, DeleteGroupRequest, DeleteGroupResponse,
        DeleteUserRequest, DeleteUserResponse, ListGroupsRequest, ListGroupsResponse,
        ListUsersRequest, ListUsersResponse, RemoveMemberRequest, RemoveMemberResponse,
        SetPasswordRequest, SetPasswordResponse, UpdateUserRequest, UpdateUserResponse,
        directory_server::Directory as DirectoryApi,
    },
    server::to_completion,
};
use tonic::{Request, Response, Status};

use crate::{
    directory::{Directory, Group, User},
    error::{status, task_failed},
    request::{NewGroup, NewUser, UserChanges, parse_group_name, parse_password, parse_username},
};

/// The gRPC face of the [`Directory`].
pub struct DirectoryService {
    directory: Arc<Directory>,
}

impl DirectoryService {
    /// Serves `directory`.
    pub fn new(directory: Arc<Directory>) -> Self {
        Self { directory }
    }

    /// Runs `work` on the directory to completion; its error becomes the call's status.
    async fn run<T, F, Fut>(&self, work: F) -> Result<T, Status>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Directory>) -> Fut,
        Fut: Future<Output = Result<T, AddonError>> + Send + 'static,
    {
        let work = work(Arc::clone(&self.directory));
        match to_completion(work).await {
            Ok(done) => done.map_err(status),
            Err(error) => Err(status(task_failed(error))),
        }
    }
}

#[tonic::async_trait]
impl DirectoryApi for DirectoryService {
    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<CreateUserResponse>, Status> {
        let user = NewUser::try_from(request.into_inner()).map_err(status)?;
        let user = self
            .run(|directory| async move { directory.create_user(user).await })
            .await?;
        Ok(Response::new(CreateUserResponse {
            user: Some(user.into()),
        }))
    }

    async fn update_user(
        &self,
        request: Request<UpdateUserRequest>,
    ) -> Result<Response<UpdateUserResponse>, Status> {
        let changes = UserChanges::try_from(request.into_inner()).map_err(status)?;
        let user = self
            .run(|directory| async move { directory.update_user(changes).await })
            .await?;
        Ok(Response::new(UpdateUserResponse {
            user: Some(user.into()),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let DeleteUserRequest { username } = request.into_inner();
        let username = parse_username("username", username).map_err(|e| status(e.into()))?;
        self.run(|directory| async move { directory.delete_user(&username).await })
            .await?;
        Ok(Response::new(DeleteUserResponse {}))
    }

    async fn set_password(
        &self,
        request: Request<SetPasswordRequest>,
    ) -> Result<Response<SetPasswordResponse>, Status> {
        let SetPasswordRequest { username, password } = request.into_inner();
        let username = parse_username("username", username).map_err(|e| status(e.into()))?;
        let password = parse_password("password", password).map_err(|e| status(e.into()))?;
        self.run(
            |directory| async move { directory.set_password(&username, password.expose()).await },
        )
        .await?;
        Ok(Response::new(SetPasswordResponse {}))
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let ListUsersRequest {} = request.into_inner();
        let users = self.directory.list_users().await.map_err(status)?;
        Ok(Response::new(ListUsersResponse {
            users: users.into_iter().map(Into::into).collect(),
        }))
    }

    async fn create_group(
        &self,
        request: Request<CreateGroupRequest>,
    ) -> Result<Response<CreateGroupResponse>, Status> {
        let group = NewGroup::try_from(request.into_inner()).map_err(status)?;
        let group = self
            .run(|directory| async move { directory.create_group(group).await })
            .await?;
        Ok(Response::new(CreateGroupResponse {
            group: Some(group.into()),
        }))
    }

    async fn delete_group(
        &self,
        request: Request<DeleteGroupRequest>,
    ) -> Result<Response<DeleteGroupResponse>, Status> {
        let DeleteGroupRequest { name } = request.into_inner();
        let name = parse_group_name("name", name).map_err(|e| status(e.into()))?;
        self.run(|directory| async move { directory.delete_group(&name).await })
            .await?;
        Ok(Response::new(DeleteGroupResponse {}))
    }

    async fn add_member(
        &self,
        request: Request<AddMemberRequest>,
    ) -> Result<Response<AddMemberResponse>, Status> {
        let AddMemberRequest { group, username } = request.into_inner();
        let (group, username) = membership((group, username)).map_err(status)?;
        self.run(|directory| async move { directory.add_member(&group, &username).await })
            .await?;
        Ok(Response::new(AddMemberResponse {}))
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<RemoveMemberResponse>, Status> {
        let RemoveMemberRequest { group, username } = request.into_inner();
        let (group, username) = membership((group, username)).map_err(status)?;
        self.run(|directory| async move { directory.remove_member(&group, &username).await })
            .await?;
        Ok(Response::new(RemoveMemberResponse {}))
    }

    async fn list_groups(
        &self,
        request: Request<ListGroupsRequest>,
    ) -> Result<Response<ListGroupsResponse>, Status> {
        let ListGroupsRequest {} = request.into_inner();
        let groups = self.directory.list_groups().await.map_err(status)?;
        Ok(Response::new(ListGroupsResponse {
            groups: groups.into_iter().map(Into::into).collect(),
        }))
    }
}

/// The validated group and username of a membership call.
fn membership((group, username): (String, String)) -> Result<(String, String), AddonError> {
    Ok((
        parse_group_name("group", group)?,
        parse_username("username", username)?,
    ))
}

impl From<User> for pb::User {
    fn from(user: User) -> Self {
        let User {
            username,
            email,
            display_name,
            given_name,
            family_name,
            alternate_email,
            entry_uuid,
            groups,
        } = user;
        Self {
            username,
            email,
            display_name,
            given_name,
            family_name,
            alternate_email,
            entry_uuid,
            groups,
        }
    }
}

impl From<Group> for pb::Group {
    fn from(group: Group) -> Self {
        let Group {
            name,
            gid_number,
            members,
        } = group;
        Self {
            name,
            gid_number,
            members,
        }
    }
}
