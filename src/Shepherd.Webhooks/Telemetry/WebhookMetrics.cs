namespace Shepherd.Webhooks.Telemetry;

using System.Diagnostics;
using System.Diagnostics.Metrics;
using Shepherd.Webhooks.Intake;

/// <summary>
/// The pipeline's metrics, on the meter <c>Shepherd.Webhooks</c> (an exporter that takes every <c>Shepherd*</c> meter
/// picks them up). Tags are bounded: configured source names (unknown sources count under <c>(unknown)</c>),
/// fixed reasons, kinds and outcomes.
/// </summary>
public sealed class WebhookMetrics
{
    public const string MeterName = "Shepherd.Webhooks";

    /// <summary>The source tag of requests to a source that is not configured (the name comes from the URL: not a tag value).</summary>
    public const string UnknownSource = "(unknown)";

    private readonly Counter<long> _received;
    private readonly Counter<long> _rejected;
    private readonly Counter<long> _duplicates;
    private readonly Histogram<double> _ackDuration;
    private readonly Histogram<double> _processingDuration;
    private readonly Counter<long> _attempts;
    private readonly Counter<long> _deadLettered;

    public WebhookMetrics(IMeterFactory meters)
    {
        Meter = meters.Create(MeterName);
        _received = Meter.CreateCounter<long>("shepherd.webhooks.received", "{request}", "Webhook requests received for a configured source (before verification).");
        _rejected = Meter.CreateCounter<long>("shepherd.webhooks.rejected", "{request}", "Webhook requests refused, by reason (nothing stored).");
        _duplicates = Meter.CreateCounter<long>("shepherd.webhooks.duplicates", "{event}", "Events received again with an id already stored (answered 200, not processed again).");
        _ackDuration = Meter.CreateHistogram<double>("shepherd.webhooks.ack.duration", "ms", "From request start to the durable acknowledgement (202 or duplicate 200).");
        _processingDuration = Meter.CreateHistogram<double>("shepherd.webhooks.processing.duration", "ms", "Duration of one attempt at a job (model call or delivery), by outcome.");
        _attempts = Meter.CreateCounter<long>("shepherd.webhooks.attempts", "{attempt}", "Attempts at jobs, by kind and outcome (success, retry, dead, skipped).");
        _deadLettered = Meter.CreateCounter<long>("shepherd.webhooks.dead_lettered", "{job}", "Jobs moved to the dead letters.");
    }

    public Meter Meter { get; }

    public void Received(string source) => _received.Add(1, new KeyValuePair<string, object?>("source", source));

    public void Rejected(string source, WebhookRejection reason) =>
        _rejected.Add(1, new KeyValuePair<string, object?>("source", source), new KeyValuePair<string, object?>("reason", Reason(reason)));

    public void Acknowledged(string source, bool duplicate, TimeSpan elapsed)
    {
        var sourceTag = new KeyValuePair<string, object?>("source", source);
        if (duplicate)
        {
            _duplicates.Add(1, sourceTag);
        }

        _ackDuration.Record(elapsed.TotalMilliseconds, sourceTag, new KeyValuePair<string, object?>("outcome", duplicate ? "duplicate" : "accepted"));
    }

    public void Attempt(string source, WebhookJobKind kind, string outcome, TimeSpan elapsed)
    {
        var kindName = kind.Name();
        var tags = new TagList
        {
            { "source", source },
            { "kind", kindName },
            { "outcome", outcome },
        };
        _attempts.Add(1, tags);
        _processingDuration.Record(elapsed.TotalMilliseconds, tags);
        if (outcome == "dead")
        {
            _deadLettered.Add(1, new KeyValuePair<string, object?>("source", source), new KeyValuePair<string, object?>("kind", kindName));
        }
    }

    /// <summary>The <c>reason</c> tag of a rejection.</summary>
    public static string Reason(WebhookRejection rejection) => rejection switch
    {
        WebhookRejection.UnknownSource => "unknown_source",
        WebhookRejection.TooLarge => "too_large",
        WebhookRejection.MissingSignature => "missing_signature",
        WebhookRejection.BadSignature => "bad_signature",
        WebhookRejection.MissingTimestamp => "missing_timestamp",
        WebhookRejection.StaleTimestamp => "stale_timestamp",
        WebhookRejection.MalformedJson => "malformed_json",
        WebhookRejection.NotAnObject => "not_an_object",
        WebhookRejection.MissingType => "missing_type",
        WebhookRejection.InvalidId => "invalid_id",
        WebhookRejection.Unavailable => "unavailable",
        _ => "other",
    };
}
