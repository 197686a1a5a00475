//! `GET /events`: the live event stream (see [`crate::live`]).

use std::sync::Arc;

use crm_core::webhooks::message::WebhookEnvelope;
use poem::{IntoResponse, Response, web::Data, web::sse::SSE};
use poem_openapi::{
    ApiResponse, OpenApi,
    param::Header,
    registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry},
};
use schemars::JsonSchema;

use crate::{
    api::{ApiTags, schema},
    auth::Auth,
    context::AppCtx,
    error::BodilessError,
    live,
};

/// The live event stream.
pub(crate) struct EventsApi;

#[OpenApi(tag = "ApiTags::Events")]
impl EventsApi {
    /// Server-Sent Events of the caller's tenant as they happen: each one is an event
    /// the caller may read (the same decision as a GET of its record) or a notification
    /// for the caller. `id` is the event's position: reconnect with `Last-Event-ID` to
    /// receive what was missed. `event` is the event's name, `data` its envelope (as a
    /// webhook delivers it). A comment line comes every 15 s; a client that reads too
    /// slowly is disconnected, and a connection ends after 15 minutes (reconnect with a
    /// fresh token).
    #[oai(path = "/events", method = "get", operation_id = "streamEvents")]
    async fn events(
        &self,
        ctx: Data<&Arc<AppCtx>>,
        auth: Auth,
        /// The `id` of the last event received: the stream resumes after it.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<u64>>,
    ) -> Result<LiveStream, BodilessError> {
        let caller = auth.into_caller();
        let events = live::subscribe(&ctx.live, ctx.crm.clone(), caller.principal, last_event_id.0).await?;
        Ok(LiveStream(SSE::new(events).keep_alive(ctx.live.options().heartbeat)))
    }
}

/// A `text/event-stream` response whose events carry [`WebhookEnvelope`]s.
pub(crate) struct LiveStream(SSE);

impl ApiResponse for LiveStream {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "Server-Sent Events: `id` the position, `event` the name, `data` the envelope.",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: "text/event-stream",
                    schema: MetaSchemaRef::Reference(WebhookEnvelope::schema_name().into_owned()),
                }],
                headers: Vec::new(),
            }],
        }
    }

    fn register(registry: &mut Registry) {
        schema::register_serialized::<WebhookEnvelope>(registry);
    }
}

impl IntoResponse for LiveStream {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}
