namespace Shepherd.Server.Endpoints;

using System.Text.Json;
using Shepherd.Resilience;
using Shepherd.Routing;

/// <summary>Breaker, queue and upstream-key state, as shown by <c>/health/ready</c> and <c>GET /admin/routing</c> (never a key itself).</summary>
public static class RoutingStatus
{
    public static void WriteKeys(Utf8JsonWriter w, ProviderHandle handle, DateTimeOffset now)
    {
        w.WriteStartArray("keys"u8);
        foreach (var key in handle.Keys.Keys)
        {
            w.WriteStartObject();
            w.WriteString("id"u8, key.Id);
            var cooling = key.CoolingUntil(now);
            w.WriteString("state"u8, key.IsDead ? "out" : cooling is not null ? "cooling" : "active");
            if (key.DeadSince is { } since)
            {
                w.WriteString("out_since"u8, since);
            }

            if (cooling is { } until)
            {
                w.WriteString("cooling_until"u8, until);
            }

            WriteBreaker(w, key.Breaker.Snapshot(now));
            w.WriteEndObject();
        }

        w.WriteEndArray();
    }

    public static void WriteDeployments(Utf8JsonWriter w, ModelCatalog catalog, DateTimeOffset now)
    {
        w.WriteStartArray("deployments"u8);
        foreach (var model in catalog.Models)
        {
            foreach (var deployment in model.Deployments)
            {
                var state = deployment.State;
                w.WriteStartObject();
                w.WriteString("model"u8, model.Name);
                w.WriteString("deployment"u8, deployment.Id);
                w.WriteString("provider"u8, deployment.Handle.Name);
                w.WriteString("strategy"u8, model.Strategy.Name);
                w.WriteNumber("in_flight"u8, state.InFlight);
                w.WriteNumber("waiting"u8, state.Waiting);
                if (state.MaxConcurrency is { } max)
                {
                    w.WriteNumber("max_concurrency"u8, max);
                }

                if (!double.IsNaN(state.LatencyMs))
                {
                    w.WriteNumber("first_byte_ms_avg"u8, Math.Round(state.LatencyMs, 1));
                }

                WriteBreaker(w, state.Breaker.Snapshot(now));
                w.WriteEndObject();
            }
        }

        w.WriteEndArray();
    }

    private static void WriteBreaker(Utf8JsonWriter w, BreakerSnapshot snapshot)
    {
        w.WriteStartObject("breaker"u8);
        w.WriteString("state"u8, snapshot.State switch
        {
            BreakerState.Open => "open",
            BreakerState.HalfOpen => "half_open",
            _ => "closed",
        });
        w.WriteNumber("consecutive_failures"u8, snapshot.ConsecutiveFailures);
        w.WriteNumber("window_requests"u8, snapshot.WindowRequests);
        w.WriteNumber("window_failures"u8, snapshot.WindowFailures);
        if (snapshot.OpenUntil is { } until)
        {
            w.WriteString("open_until"u8, until);
        }

        w.WriteEndObject();
    }
}
