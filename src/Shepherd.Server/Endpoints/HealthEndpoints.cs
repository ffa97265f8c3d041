namespace Shepherd.Server.Endpoints;

using Microsoft.AspNetCore.Http;
using Shepherd.Server.Hosting;

/// <summary>
/// <c>/health</c> (liveness) and <c>/health/ready</c> (readiness). An upstream in trouble is reported in the body,
/// never turned into a failing status: that would take every replica out of the load balancer at once.
/// </summary>
public sealed class HealthEndpoints(GatewayServices gateway, Shepherd.Webhooks.Health.WebhookQueueReport? webhooks = null)
{
    private static readonly byte[] Live = """{"status":"ok"}"""u8.ToArray();

    public static Task LiveAsync(HttpContext context)
    {
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = Live.Length;
        return context.Response.Body.WriteAsync(Live).AsTask();
    }

    public async Task ReadyAsync(HttpContext context)
    {
        // Not ready only when the gateway itself cannot serve: its own (embedded) storage does not answer. A shared
        // database or Redis that does not answer is reported as "degraded" (keys stay in memory, usage spills to a
        // local file, limits and breakers fall back to this instance) — every replica failing readiness at once
        // would take the whole service out of the load balancer.
        var storageOk = await gateway.Storage.PingAsync(context.RequestAborted);
        var stateOk = gateway.SharedState is not { } shared || await shared.CheckAsync(context.RequestAborted);
        var ready = storageOk || gateway.Storage.IsShared;
        var now = gateway.Time.GetUtcNow();
        var webhookQueues = webhooks is null ? null : await webhooks.ReadAsync(storageOk, context.RequestAborted);
        await ModelsEndpoints.WriteJsonAsync(context, w =>
        {
            w.WriteStartObject();
            w.WriteString("status"u8, !ready ? "not_ready"u8 : storageOk && stateOk ? "ready"u8 : "degraded"u8);
            w.WriteString("version"u8, GatewayServices.Version);
            w.WriteStartObject("checks"u8);
            w.WriteString("config"u8, "loaded"u8);
            w.WriteString("storage"u8, storageOk ? "ok"u8 : "unreachable"u8);
            w.WriteString("state"u8, stateOk ? "ok"u8 : "degraded"u8);
            w.WriteEndObject();
            w.WriteString("storage"u8, gateway.Storage.Kind);
            w.WriteString("state"u8, gateway.SharedState is null ? "memory"u8 : "redis"u8);
            w.WriteNumber("models"u8, gateway.Catalog.Models.Count);
            w.WriteStartArray("providers"u8);
            foreach (var provider in gateway.Status.All)
            {
                w.WriteStartObject();
                w.WriteString("name"u8, provider.Name);
                w.WriteString("type"u8, provider.Type);
                w.WriteString("state"u8, provider.State);
                if (provider.LastStatus != 0)
                {
                    w.WriteNumber("last_status"u8, provider.LastStatus);
                }

                if (provider.LastFailureClass is { } failureClass)
                {
                    w.WriteString("last_failure_class"u8, failureClass.ToString());
                }

                if (provider.LastError is { } error)
                {
                    w.WriteString("last_error"u8, error);
                }

                if (provider.LastSuccessAt is { } success)
                {
                    w.WriteString("last_success_at"u8, success);
                }

                if (provider.LastFailureAt is { } failure)
                {
                    w.WriteString("last_failure_at"u8, failure);
                }

                w.WriteNumber("consecutive_failures"u8, provider.ConsecutiveFailures);
                w.WriteNumber("requests"u8, provider.Requests);
                w.WriteNumber("failures"u8, provider.Failures);
                if (gateway.Providers.TryGetValue(provider.Name, out var handle))
                {
                    RoutingStatus.WriteKeys(w, handle, now);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            RoutingStatus.WriteDeployments(w, gateway.Catalog, now);
            webhookQueues?.Invoke(w);
            w.WriteEndObject();
        }, ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable);
    }
}
