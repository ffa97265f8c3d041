namespace Shepherd.Server.Webhooks;

using Microsoft.AspNetCore.Http;
using Shepherd.Errors;
using Shepherd.Server.Endpoints;
using Shepherd.Server.Http;
using Shepherd.Webhooks.Intake;
using Shepherd.Webhooks.Telemetry;

/// <summary>
/// <c>POST /webhooks/{source}</c>: 404 unknown source, 413 over the source's size limit, 401 bad or missing signature
/// (or a stale timestamp), 400 not a JSON object or no type, 503 when the event cannot be stored; otherwise the event
/// is stored durably and answered <c>202 {"status":"accepted","id":…}</c>, or <c>200 {"status":"duplicate","id":…}</c>
/// when its id was seen before. No key is needed: the signature is the authentication.
/// </summary>
public sealed class WebhookEndpoint(WebhookReceiver receiver)
{
    public async Task HandleAsync(HttpContext context, string source)
    {
        var start = RequestContext.Get(context).StartTimestamp;
        if (!receiver.TryGetSource(source, out var configured))
        {
            await WriteAsync(context, receiver.Refuse(WebhookMetrics.UnknownSource, WebhookRejection.UnknownSource, 404, "Unknown webhook source."));
            return;
        }

        var (body, error) = await RequestBody.ReadAsync(context.Request, configured.MaxBodyBytes, context.RequestAborted);
        if (error is not null)
        {
            var rejection = error.Status == StatusCodes.Status413PayloadTooLarge ? WebhookRejection.TooLarge : WebhookRejection.MalformedJson;
            receiver.Refuse(configured.Name, rejection, error.Status, error.Message);
            await ErrorResponses.WriteAsync(context, error);
            return;
        }

        using (body)
        {
            var headers = context.Request.Headers;
            var receipt = await receiver.ReceiveAsync(configured, body!.WrittenMemory, name => headers.TryGetValue(name, out var value) ? value.ToString() : null, start);
            await WriteAsync(context, receipt);
        }
    }

    private static Task WriteAsync(HttpContext context, WebhookReceipt receipt)
    {
        if (receipt.Accepted)
        {
            return ModelsEndpoints.WriteJsonAsync(context, w =>
            {
                w.WriteStartObject();
                w.WriteString("status"u8, receipt.Duplicate ? "duplicate"u8 : "accepted"u8);
                w.WriteString("id"u8, receipt.EventId);
                w.WriteEndObject();
            }, receipt.Status);
        }

        var type = receipt.Status switch
        {
            401 => "authentication_error",
            >= 500 => "server_error",
            _ => "invalid_request_error",
        };
        return ErrorResponses.WriteAsync(context, new GatewayError(receipt.Status, receipt.Message, type, WebhookMetrics.Reason(receipt.Rejection))
        {
            RetryAfter = receipt.Status == StatusCodes.Status503ServiceUnavailable ? TimeSpan.FromSeconds(1) : null,
        });
    }
}
