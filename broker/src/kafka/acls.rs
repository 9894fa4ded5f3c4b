//! CreateAcls, DescribeAcls and DeleteAcls (what `kafka-acls` sends).
//!
//! DescribeAcls answers from the ACLs this broker has in force; CreateAcls
//! and DeleteAcls go to where ACLs are kept ([`crate::security::AclAdmin`]:
//! the controller in a cluster, the data directory of a standalone
//! broker). Who may call them is decided in [`super::authz`] (DESCRIBE,
//! ALTER on the cluster).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_proto::acl::{
    Acl, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
};

use super::KafkaContext;

fn message(text: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.into()))
}

/// The ACL a CreateAcls entry describes.
fn acl_of(c: &create_acls_request::AclCreation) -> Result<Acl, String> {
    Ok(Acl {
        resource_type: ResourceType::from_code(c.resource_type)
            .ok_or_else(|| format!("unsupported resource type {}", c.resource_type))?,
        name: c.resource_name.to_string(),
        pattern: PatternType::from_code(c.resource_pattern_type)
            .ok_or_else(|| format!("unsupported pattern type {}", c.resource_pattern_type))?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation)
            .ok_or_else(|| format!("unsupported operation {}", c.operation))?,
        permission: Permission::from_code(c.permission_type)
            .ok_or_else(|| format!("unsupported permission type {}", c.permission_type))?,
    })
}

/// An optional filter code: 1 (ANY) or an unknown code is no filter.
fn any_or<T>(code: i8, known: impl Fn(i8) -> Option<T>) -> Option<T> {
    if code == 1 { None } else { known(code) }
}

/// The filter of a DescribeAcls request or a DeleteAcls entry.
#[allow(clippy::too_many_arguments)]
fn filter_of(
    resource_type: i8,
    name: &Option<StrBytes>,
    pattern: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    let check = |code: i8, known: bool, what: &str| {
        if code == 1 || known {
            Ok(())
        } else {
            Err(format!("unsupported {what} {code} in the filter"))
        }
    };
    check(
        resource_type,
        ResourceType::from_code(resource_type).is_some(),
        "resource type",
    )?;
    check(
        operation,
        Operation::from_code(operation).is_some(),
        "operation",
    )?;
    check(
        permission,
        Permission::from_code(permission).is_some(),
        "permission type",
    )?;
    Ok(AclFilter {
        resource_type: any_or(resource_type, ResourceType::from_code),
        name: name.as_ref().map(|n| n.to_string()),
        pattern: PatternFilter::from_code(pattern)
            .ok_or_else(|| format!("unsupported pattern type {pattern} in the filter"))?,
        principal: principal.as_ref().map(|p| p.to_string()),
        host: host.as_ref().map(|h| h.to_string()),
        operation: any_or(operation, Operation::from_code),
        permission: any_or(permission, Permission::from_code),
    })
}

/// Each entry's outcome: its own parse error, the change's error, or its
/// outcome among `applied` (one per entry that parsed, in order).
fn outcomes<T, U>(
    parsed: Vec<Result<T, String>>,
    applied: Result<Vec<Result<U, String>>, String>,
) -> Vec<Result<U, (ResponseError, String)>> {
    let (mut applied_each, failed) = match applied {
        Ok(each) => (each.into_iter(), None),
        Err(why) => (Vec::new().into_iter(), Some(why)),
    };
    parsed
        .into_iter()
        .map(|entry| match (entry, &failed) {
            (Err(why), _) => Err((ResponseError::InvalidRequest, why)),
            (Ok(_), Some(why)) => Err((ResponseError::UnknownServerError, why.clone())),
            (Ok(_), None) => match applied_each.next() {
                Some(Ok(done)) => Ok(done),
                Some(Err(why)) => Err((ResponseError::InvalidRequest, why)),
                None => Err((ResponseError::UnknownServerError, "no outcome".to_owned())),
            },
        })
        .collect()
}

/// CreateAcls: every creation succeeds or fails on its own.
pub async fn create_acls(
    ctx: &KafkaContext,
    _version: i16,
    request: CreateAclsRequest,
) -> CreateAclsResponse {
    let parsed: Vec<Result<Acl, String>> = request.creations.iter().map(acl_of).collect();
    let valid: Vec<Acl> = parsed
        .iter()
        .filter_map(|a| a.as_ref().ok().cloned())
        .collect();
    let outcome = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        ctx.acls
            .admin
            .alter(valid, Vec::new())
            .await
            .map(|changes| changes.created)
    };
    let results = outcomes(parsed, outcome)
        .into_iter()
        .map(|result| match result {
            Ok(()) => AclCreationResult::default(),
            Err((error, why)) => AclCreationResult::default()
                .with_error_code(error.code())
                .with_error_message(message(why)),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// DescribeAcls: the ACLs in force that the filter matches, by resource.
pub async fn describe_acls(
    ctx: &KafkaContext,
    _version: i16,
    request: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let filter = match filter_of(
        request.resource_type_filter,
        &request.resource_name_filter,
        request.pattern_type_filter,
        &request.principal_filter,
        &request.host_filter,
        request.operation,
        request.permission_type,
    ) {
        Ok(f) => f,
        Err(why) => {
            return DescribeAclsResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(message(why));
        }
    };
    let acls = ctx.acls.authorizer.acls();
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in acls.iter().filter(|a| filter.matches(a)) {
        let description = AclDescription::default()
            .with_principal(StrBytes::from_string(acl.principal.clone()))
            .with_host(StrBytes::from_string(acl.host.clone()))
            .with_operation(acl.operation.code())
            .with_permission_type(acl.permission.code());
        let same = |r: &&mut DescribeAclsResource| {
            r.resource_type == acl.resource_type.code()
                && r.pattern_type == acl.pattern.code()
                && r.resource_name.as_str() == acl.name
        };
        match resources.iter_mut().find(same) {
            Some(r) => r.acls.push(description),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(acl.resource_type.code())
                    .with_resource_name(StrBytes::from_string(acl.name.clone()))
                    .with_pattern_type(acl.pattern.code())
                    .with_acls(vec![description]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

/// DeleteAcls: per filter, the ACLs it deleted.
pub async fn delete_acls(
    ctx: &KafkaContext,
    _version: i16,
    request: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let parsed: Vec<Result<AclFilter, String>> = request
        .filters
        .iter()
        .map(|f| {
            filter_of(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed
        .iter()
        .filter_map(|f| f.as_ref().ok().cloned())
        .collect();
    let outcome = if valid.is_empty() {
        Ok(Vec::new())
    } else {
        ctx.acls
            .admin
            .alter(Vec::new(), valid)
            .await
            .map(|changes| changes.deleted)
    };
    let results = outcomes(parsed, outcome)
        .into_iter()
        .map(|result| match result {
            Ok(acls) => DeleteAclsFilterResult::default().with_matching_acls(
                acls.iter()
                    .map(|a| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(a.resource_type.code())
                            .with_resource_name(StrBytes::from_string(a.name.clone()))
                            .with_pattern_type(a.pattern.code())
                            .with_principal(StrBytes::from_string(a.principal.clone()))
                            .with_host(StrBytes::from_string(a.host.clone()))
                            .with_operation(a.operation.code())
                            .with_permission_type(a.permission.code())
                    })
                    .collect(),
            ),
            Err((error, why)) => DeleteAclsFilterResult::default()
                .with_error_code(error.code())
                .with_error_message(message(why)),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
