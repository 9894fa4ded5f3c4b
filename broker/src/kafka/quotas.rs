//! DescribeClientQuotas and AlterClientQuotas (what `kafka-configs
//! --entity-type users|clients` sends).
//!
//! DescribeClientQuotas answers from the quotas this broker has in force;
//! AlterClientQuotas goes to where quotas are kept
//! ([`crate::quota::QuotaAdmin`]: the controller in a cluster, the data
//! directory of a standalone broker). Entries are checked here first, with
//! Kafka's rules and errors ([`rill_proto::quota`]): INVALID_REQUEST for a
//! bad entity, key or value, UNSUPPORTED_VERSION for an entity or match
//! type DescribeClientQuotas does not know. `validate_only` checks without
//! changing anything. Who may call them is decided in [`super::authz`]
//! (DESCRIBE_CONFIGS, ALTER_CONFIGS on the cluster).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rill_proto::quota::{QuotaAlteration, QuotaError, QuotaFilter};

use super::KafkaContext;

fn message(text: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(text.into()))
}

/// DescribeClientQuotas: the entities the filter selects, with their
/// quotas.
pub async fn describe_client_quotas(
    ctx: &KafkaContext,
    _version: i16,
    request: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    use describe_client_quotas_response::{EntityData, EntryData, ValueData};
    let filter = QuotaFilter::parse(
        request.components.iter().map(|c| {
            (
                c.entity_type.as_str(),
                c.match_type,
                c._match.as_ref().map(|m| m.as_str()),
            )
        }),
        request.strict,
    );
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            let code = if e.unsupported() {
                ResponseError::UnsupportedVersion
            } else {
                ResponseError::InvalidRequest
            };
            ctx.count_error(ApiKey::DescribeClientQuotas, code.code());
            return DescribeClientQuotasResponse::default()
                .with_error_code(code.code())
                .with_error_message(message(e.to_string()))
                .with_entries(None);
        }
    };
    let quotas = ctx.quotas.manager.quotas();
    let entries = quotas
        .describe(&filter)
        .into_iter()
        .map(|(entity, values)| {
            EntryData::default()
                .with_entity(
                    entity
                        .components()
                        .into_iter()
                        .map(|(t, name)| {
                            EntityData::default()
                                .with_entity_type(StrBytes::from_static_str(t))
                                .with_entity_name(name.map(|n| StrBytes::from_string(n.to_owned())))
                        })
                        .collect(),
                )
                .with_values(
                    values
                        .iter()
                        .map(|(k, v)| {
                            ValueData::default()
                                .with_key(StrBytes::from_static_str(k.name()))
                                .with_value(*v)
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeClientQuotasResponse::default()
        .with_error_message(None)
        .with_entries(Some(entries))
}

/// AlterClientQuotas: every entry succeeds or fails on its own.
pub async fn alter_client_quotas(
    ctx: &KafkaContext,
    _version: i16,
    request: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    use alter_client_quotas_response::{EntityData, EntryData};
    let parsed: Vec<Result<QuotaAlteration, QuotaError>> = request
        .entries
        .iter()
        .map(|e| {
            QuotaAlteration::parse(
                e.entity.iter().map(|c| {
                    (
                        c.entity_type.as_str(),
                        c.entity_name.as_ref().map(|n| n.as_str()),
                    )
                }),
                e.ops.iter().map(|o| (o.key.as_str(), o.value, o.remove)),
            )
        })
        .collect();
    let valid: Vec<QuotaAlteration> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let applied: Result<Vec<Result<(), String>>, String> = if valid.is_empty() {
        Ok(Vec::new())
    } else if request.validate_only {
        // What the change would do, on a copy of the quotas in force.
        let mut copy = ctx.quotas.manager.quotas().as_ref().clone();
        Ok(copy
            .alter(&valid)
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect())
    } else {
        ctx.quotas.admin.alter(valid).await
    };
    let mut applied_each = match &applied {
        Ok(each) => each.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let entries = request
        .entries
        .iter()
        .zip(parsed)
        .map(|(entry, parsed)| {
            let outcome = match (parsed, &applied) {
                (Err(e), _) => Err((ResponseError::InvalidRequest, e.to_string())),
                (Ok(_), Err(why)) => Err((ResponseError::UnknownServerError, why.clone())),
                (Ok(_), Ok(_)) => match applied_each.next() {
                    Some(Ok(())) => Ok(()),
                    Some(Err(why)) => Err((ResponseError::InvalidRequest, why)),
                    None => Err((ResponseError::UnknownServerError, "no outcome".to_owned())),
                },
            };
            let entity = entry
                .entity
                .iter()
                .map(|c| {
                    EntityData::default()
                        .with_entity_type(c.entity_type.clone())
                        .with_entity_name(c.entity_name.clone())
                })
                .collect();
            let answer = EntryData::default().with_entity(entity);
            match outcome {
                Ok(()) => answer.with_error_message(None),
                Err((error, why)) => {
                    ctx.count_error(ApiKey::AlterClientQuotas, error.code());
                    answer
                        .with_error_code(error.code())
                        .with_error_message(message(why))
                }
            }
        })
        .collect();
    AlterClientQuotasResponse::default().with_entries(entries)
}
