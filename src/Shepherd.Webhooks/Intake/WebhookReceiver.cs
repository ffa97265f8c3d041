namespace Shepherd.Webhooks.Intake;

using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Shepherd.Webhooks.Telemetry;
using Shepherd.Webhooks.Verification;

/// <summary>Why a webhook request was refused (the metrics' <c>reason</c> tag).</summary>
public enum WebhookRejection
{
    None,
    UnknownSource,
    TooLarge,
    MissingSignature,
    BadSignature,
    MissingTimestamp,
    StaleTimestamp,
    MalformedJson,
    NotAnObject,
    MissingType,
    InvalidId,

    /// <summary>The event could not be stored (queue full, storage failing): nothing was acknowledged.</summary>
    Unavailable,
}

/// <summary>What to answer a webhook request.</summary>
public sealed record WebhookReceipt(int Status, WebhookRejection Rejection, string Message, string? EventId = null, bool Duplicate = false)
{
    public bool Accepted => Rejection == WebhookRejection.None;
}

/// <summary>
/// Receives one webhook request: verify the signature (and timestamp) over the raw bytes, parse the event, find its
/// id and type, and store it durably before answering. Nothing is stored unless the signature is valid and the body is
/// a JSON object with a type.
/// </summary>
/// <remarks>Order matters: an unauthenticated caller learns nothing about parsing (the signature is checked before
/// the body is looked at), and a rejected request never reaches the store or a worker.</remarks>
public sealed class WebhookReceiver(WebhookRuntime runtime, WebhookIntake intake, WebhookMetrics metrics, TimeProvider time)
{
    /// <summary>Events deeper than this are refused as malformed (no worker ever walks an adversarial tree).</summary>
    public const int MaxDepth = 64;

    private const int MaxIdLength = 256;

    public bool TryGetSource(string name, out WebhookSource source) => runtime.ByName.TryGetValue(name, out source!);

    /// <summary>Counts a refusal that happened before <see cref="ReceiveAsync"/> (unknown source, body too large).</summary>
    public WebhookReceipt Refuse(string source, WebhookRejection rejection, int status, string message)
    {
        metrics.Rejected(source, rejection);
        return new WebhookReceipt(status, rejection, message);
    }

    /// <param name="source">The source the request was sent to.</param>
    /// <param name="body">The exact bytes received.</param>
    /// <param name="header">Reads a request header (null when absent).</param>
    /// <param name="startTimestamp">When the request started (<see cref="Stopwatch.GetTimestamp"/>), for the acknowledgement latency.</param>
    public async Task<WebhookReceipt> ReceiveAsync(WebhookSource source, ReadOnlyMemory<byte> body, Func<string, string?> header, long startTimestamp)
    {
        metrics.Received(source.Name);
        var signature = header(source.SignatureHeader);
        if (string.IsNullOrWhiteSpace(signature))
        {
            return Reject(source, WebhookRejection.MissingSignature, 401, $"Missing signature: the {source.SignatureHeader} header is required.");
        }

        string? timestamp = null;
        if (source.TimestampHeader is { } timestampHeader)
        {
            timestamp = header(timestampHeader)?.Trim();
            if (string.IsNullOrEmpty(timestamp))
            {
                return Reject(source, WebhookRejection.MissingTimestamp, 401, $"Missing timestamp: the {timestampHeader} header is required.");
            }
        }

        if (!WebhookSignature.Verify(body.Span, timestamp, signature, source.Secrets))
        {
            return Reject(source, WebhookRejection.BadSignature, 401, "Invalid signature.");
        }

        // Checked after the signature: the timestamp is part of what was signed, so only then is it worth believing.
        if (timestamp is not null && !WebhookSignature.IsFresh(timestamp, time.GetUtcNow(), source.Tolerance))
        {
            return Reject(source, WebhookRejection.StaleTimestamp, 401, $"The timestamp is not a unix time within {source.Tolerance.TotalSeconds:F0} s of now (a replayed or delayed request).");
        }

        // The reader checks UTF-8 only in the values it decodes; a worker would meet a bad string later. Check it all now.
        if (!System.Text.Unicode.Utf8.IsValid(body.Span))
        {
            return Reject(source, WebhookRejection.MalformedJson, 400, $"The body is not valid JSON (UTF-8, at most {MaxDepth} levels deep).");
        }

        WebhookEventDraft draft;
        try
        {
            using var document = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = MaxDepth });
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return Reject(source, WebhookRejection.NotAnObject, 400, "The event must be a JSON object.");
            }

            if (!source.TypePath.TryResolve(root, out var typeValue) || typeValue.ValueKind != JsonValueKind.String ||
                typeValue.GetString() is not { Length: > 0 and <= MaxIdLength } type || type.Any(char.IsControl))
            {
                return Reject(source, WebhookRejection.MissingType, 400, $"The event has no type: '{source.TypePath.Text}' must be a non-empty string of at most {MaxIdLength} characters.");
            }

            if (EventId(source, root, body.Span, header) is not { } id)
            {
                return Reject(source, WebhookRejection.InvalidId, 400, $"The event id ('{source.IdHeader ?? source.IdPath.Text}') must be a non-empty string or integer of at most {MaxIdLength} printable characters.");
            }

            var rule = source.Match(type);
            draft = rule is null
                ? new WebhookEventDraft(source.Name, id, type, body.ToArray(), Skip: true, Note: "no rule matches this event type")
                : rule.Skip
                    ? new WebhookEventDraft(source.Name, id, type, body.ToArray(), Skip: true, Note: $"skipped by the rule on '{rule.On}'")
                    : new WebhookEventDraft(source.Name, id, type, body.ToArray());
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: a string that escapes a lone UTF-16 surrogate ("\ud800") cannot be read as text.
            return Reject(source, WebhookRejection.MalformedJson, 400, $"The body is not valid JSON (UTF-8, at most {MaxDepth} levels deep).");
        }

        bool stored;
        try
        {
            stored = await intake.SubmitAsync(draft);
        }
        catch (WebhookIntakeUnavailableException ex)
        {
            return Reject(source, WebhookRejection.Unavailable, 503, ex.Message);
        }

        metrics.Acknowledged(source.Name, !stored, Stopwatch.GetElapsedTime(startTimestamp));
        return stored
            ? new WebhookReceipt(202, WebhookRejection.None, "accepted", draft.EventId)
            : new WebhookReceipt(200, WebhookRejection.None, "duplicate", draft.EventId, Duplicate: true);
    }

    /// <summary>The id header (if configured and sent), else the id field, else the SHA-256 of the body; null when malformed.</summary>
    private static string? EventId(WebhookSource source, JsonElement root, ReadOnlySpan<byte> body, Func<string, string?> header)
    {
        if (source.IdHeader is { } idHeader && header(idHeader) is { } fromHeader)
        {
            return IsValidId(fromHeader.Trim()) ? fromHeader.Trim() : null;
        }

        if (source.IdPath.TryResolve(root, out var value) && value.ValueKind != JsonValueKind.Null)
        {
            var id = value.ValueKind switch
            {
                JsonValueKind.String => value.GetString(),
                JsonValueKind.Number when value.TryGetInt64(out var n) => n.ToString(System.Globalization.CultureInfo.InvariantCulture),
                _ => null,
            };
            return id is not null && IsValidId(id) ? id : null;
        }

        // No id: identical redeliveries of the same bytes still collapse into one event.
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(body));
    }

    private static bool IsValidId(string id) => id.Length is > 0 and <= MaxIdLength && !id.Any(char.IsControl);

    private WebhookReceipt Reject(WebhookSource source, WebhookRejection rejection, int status, string message) =>
        Refuse(source.Name, rejection, status, message);
}
