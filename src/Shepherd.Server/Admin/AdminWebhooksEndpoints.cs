namespace Shepherd.Server.Admin;

using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Shepherd.Errors;
using Shepherd.Server.Endpoints;
using Shepherd.Server.Http;
using Shepherd.Webhooks;
using Shepherd.Webhooks.Processing;

/// <summary>
/// <c>/admin/webhooks</c>: list events (by source and status), show one with its payload, attempts and result, list the
/// dead letters, replay one event or every dead one (the event keeps its id), purge the dead letters. Master key only.
/// Documented in docs/admin-api.md and the OpenAPI document.
/// </summary>
public sealed class AdminWebhooksEndpoints(
    IWebhookJobStore store,
    IWebhookEventQuery query,
    WebhookProcessor processor,
    TimeProvider time,
    Func<HttpContext, Task<bool>> authorize)
{
    public Task ListAsync(HttpContext context) => ListAsync(context, forced: null);

    public Task DeadAsync(HttpContext context) => ListAsync(context, WebhookJobStatus.Dead);

    private async Task ListAsync(HttpContext context, WebhookJobStatus? forced)
    {
        if (!await authorize(context))
        {
            return;
        }

        if (!TryListQuery(context, forced, out var list, out var error))
        {
            await ErrorResponses.WriteAsync(context, error!);
            return;
        }

        await WriteListAsync(context, list!);
    }

    public async Task ShowAsync(HttpContext context, string id)
    {
        if (!await authorize(context) || await FindOneAsync(context, id) is not { } detail)
        {
            return;
        }

        await ModelsEndpoints.WriteJsonAsync(context, w => WriteDetail(w, detail));
    }

    public async Task ReplayAsync(HttpContext context, string id)
    {
        if (!await authorize(context) || await FindOneAsync(context, id) is not { } detail)
        {
            return;
        }

        var outcome = await store.ReplayAsync(detail.Source, detail.EventId, time.GetUtcNow(), context.RequestAborted);
        if (outcome != WebhookReplayOutcome.Replayed)
        {
            await ErrorResponses.WriteAsync(context, new GatewayError(
                409,
                $"Nothing to replay: the event is {Describe(detail)} (only dead or retrying jobs are replayed).",
                "invalid_request_error",
                "nothing_to_replay"));
            return;
        }

        processor.Notify();
        await ModelsEndpoints.WriteJsonAsync(context, w =>
        {
            w.WriteStartObject();
            w.WriteString("id"u8, detail.EventId);
            w.WriteString("source"u8, detail.Source);
            w.WriteString("status"u8, "replayed"u8);
            w.WriteEndObject();
        });
    }

    public async Task ReplayDeadAsync(HttpContext context)
    {
        if (!await authorize(context))
        {
            return;
        }

        var replayed = await store.ReplayDeadAsync(SourceOf(context), time.GetUtcNow(), context.RequestAborted);
        processor.Notify();
        await ModelsEndpoints.WriteJsonAsync(context, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("replayed"u8, replayed);
            w.WriteEndObject();
        });
    }

    public async Task PurgeDeadAsync(HttpContext context)
    {
        if (!await authorize(context))
        {
            return;
        }

        var purged = await store.PurgeDeadAsync(SourceOf(context), context.RequestAborted);
        await ModelsEndpoints.WriteJsonAsync(context, w =>
        {
            w.WriteStartObject();
            w.WriteNumber("purged"u8, purged);
            w.WriteEndObject();
        });
    }

    private async Task WriteListAsync(HttpContext context, WebhookListQuery list)
    {
        // One more than asked for tells whether there is a next page.
        var events = await query.ListAsync(list with { Limit = list.Limit + 1 }, context.RequestAborted);
        await ModelsEndpoints.WriteJsonAsync(context, w =>
        {
            w.WriteStartObject();
            w.WriteString("object"u8, "list"u8);
            w.WriteStartArray("data"u8);
            foreach (var e in events.Take(list.Limit))
            {
                WriteSummary(w, e);
            }

            w.WriteEndArray();
            w.WriteBoolean("has_more"u8, events.Count > list.Limit);
            if (events.Count > list.Limit)
            {
                w.WriteNumber("next_before"u8, events[list.Limit - 1].Sequence);
            }

            w.WriteEndObject();
        });
    }

    private static bool TryListQuery(HttpContext context, WebhookJobStatus? forced, out WebhookListQuery? list, out GatewayError? error)
    {
        list = null;
        error = null;
        var q = context.Request.Query;
        var status = forced;
        if (forced is null && q["status"].ToString() is { Length: > 0 } text)
        {
            if (ParseStatus(text) is not { } parsed)
            {
                error = GatewayError.InvalidRequest($"Unknown status '{(text.Length > 32 ? text[..32] : text)}' (waiting, leased, completed, failed, dead or skipped).", "status", "invalid_value");
                return false;
            }

            status = parsed;
        }

        var limit = 50;
        if (q["limit"].ToString() is { Length: > 0 } limitText && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > 1000))
        {
            error = GatewayError.InvalidRequest("limit must be a whole number between 1 and 1000.", "limit", "invalid_value");
            return false;
        }

        long? before = null;
        if (q["before"].ToString() is { Length: > 0 } beforeText)
        {
            if (!long.TryParse(beforeText, NumberStyles.None, CultureInfo.InvariantCulture, out var b))
            {
                error = GatewayError.InvalidRequest("before must be a sequence number from a previous page.", "before", "invalid_value");
                return false;
            }

            before = b;
        }

        list = new WebhookListQuery(SourceOf(context), status, before, limit);
        return true;
    }

    private async Task<WebhookEventDetail?> FindOneAsync(HttpContext context, string id)
    {
        // Route values keep an encoded slash as %2F; event ids may contain one.
        id = id.Replace("%2F", "/", StringComparison.OrdinalIgnoreCase);
        var found = await query.FindAsync(id, SourceOf(context), context.RequestAborted);
        if (found.Count == 1)
        {
            return found[0];
        }

        var shown = id.Length > 64 ? id[..64] + "…" : id;
        await ErrorResponses.WriteAsync(context, found.Count == 0
            ? GatewayError.NotFound($"No webhook event with id '{shown}'.", "event_not_found")
            : new GatewayError(409, $"Several sources have an event '{shown}' ({string.Join(", ", found.Select(f => f.Source))}): add ?source=NAME.", "invalid_request_error", "ambiguous_event"));
        return null;
    }

    private static string? SourceOf(HttpContext context) =>
        context.Request.Query["source"].ToString() is { Length: > 0 } source ? source : null;

    private static string Describe(WebhookEventDetail detail) =>
        string.Join(", ", detail.Jobs.Select(j => $"{j.Kind.Name()} {j.Status.Name()}"));

    internal static WebhookJobStatus? ParseStatus(string text) => WebhookJobNames.ParseStatus(text.ToLowerInvariant());

    private static void WriteSummary(Utf8JsonWriter w, WebhookEventSummary e)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, e.EventId);
        w.WriteString("source"u8, e.Source);
        w.WriteString("type"u8, e.EventType);
        w.WriteString("status"u8, e.Status.Name());
        w.WriteNumber("attempts"u8, e.Attempts);
        w.WriteString("received_at"u8, e.ReceivedAt);
        w.WriteString("updated_at"u8, e.UpdatedAt);
        if (e.LastError is { } error)
        {
            w.WriteString("last_error"u8, error);
        }

        if (e.DeliveryStatus is { } delivery)
        {
            w.WriteString("delivery_status"u8, delivery.Name());
        }

        w.WriteNumber("sequence"u8, e.Sequence);
        w.WriteEndObject();
    }

    private static void WriteDetail(Utf8JsonWriter w, WebhookEventDetail e)
    {
        w.WriteStartObject();
        w.WriteString("object"u8, "webhook_event"u8);
        w.WriteString("id"u8, e.EventId);
        w.WriteString("source"u8, e.Source);
        w.WriteString("type"u8, e.EventType);
        var process = e.Jobs.FirstOrDefault(j => j.Kind == WebhookJobKind.Process);
        if (process is not null)
        {
            w.WriteString("status"u8, process.Status.Name());
        }

        w.WriteString("received_at"u8, e.ReceivedAt);
        w.WriteNumber("sequence"u8, e.Sequence);
        w.WritePropertyName("payload"u8);
        try
        {
            w.WriteRawValue(e.Payload.Span);
        }
        catch (Exception ex) when (ex is JsonException or ArgumentException)
        {
            w.WriteBase64StringValue(e.Payload.Span);
        }

        w.WriteStartArray("jobs"u8);
        foreach (var job in e.Jobs)
        {
            w.WriteStartObject();
            w.WriteString("kind"u8, job.Kind.Name());
            w.WriteString("status"u8, job.Status.Name());
            w.WriteNumber("attempts"u8, job.Attempts);
            w.WriteNumber("tries"u8, job.Tries);
            if (job.Status is WebhookJobStatus.Waiting or WebhookJobStatus.Failed)
            {
                w.WriteString("next_attempt_at"u8, job.NextAttemptAt);
            }
            else if (job.Status == WebhookJobStatus.Leased)
            {
                w.WriteString("lease_until"u8, job.NextAttemptAt);
            }

            if (job.LastError is { } error)
            {
                w.WriteString("last_error"u8, error);
            }

            w.WriteString("updated_at"u8, job.UpdatedAt);
            w.WriteStartArray("history"u8);
            foreach (var attempt in job.History)
            {
                w.WriteStartObject();
                w.WriteNumber("attempt"u8, attempt.Number);
                w.WriteString("started_at"u8, attempt.StartedAt);
                w.WriteNumber("duration_ms"u8, Math.Round(attempt.DurationMs, 1));
                w.WriteString("outcome"u8, attempt.Outcome);
                if (attempt.Status is { } status)
                {
                    w.WriteNumber("status"u8, status);
                }

                if (attempt.Error is { } attemptError)
                {
                    w.WriteString("error"u8, attemptError);
                }

                if (attempt.RequestId is { } requestId)
                {
                    w.WriteString("request_id"u8, requestId);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        w.WriteEndArray();
        if (e.Result is { } result)
        {
            w.WriteStartObject("result"u8);
            w.WriteString("model"u8, result.Model);
            w.WriteString("text"u8, result.Text);
            if (result.FinishReason is { } finish)
            {
                w.WriteString("finish_reason"u8, finish);
            }

            w.WriteNumber("prompt_tokens"u8, result.PromptTokens);
            w.WriteNumber("completion_tokens"u8, result.CompletionTokens);
            w.WriteNumber("cost_usd"u8, result.CostUsd);
            w.WriteNumber("latency_ms"u8, Math.Round(result.LatencyMs, 1));
            w.WriteString("request_id"u8, result.RequestId);
            w.WriteString("completed_at"u8, result.CompletedAt);
            w.WriteEndObject();
        }
        else
        {
            w.WriteNull("result"u8);
        }

        w.WriteEndObject();
    }
}
