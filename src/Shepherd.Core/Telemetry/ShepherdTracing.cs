namespace Shepherd.Telemetry;

using System.Diagnostics;
using Shepherd.Accounting;
using Shepherd.Errors;
using Shepherd.Routing;

/// <summary>
/// The <c>Shepherd</c> activity source: one server span per client chat request (<c>chat {model}</c>) with one client
/// span per upstream attempt beneath it. Attributes follow the OpenTelemetry GenAI semantic conventions.
/// </summary>
/// <remarks>
/// Nothing listens unless <c>telemetry.otlp_endpoint</c> is set, and then starting a span returns null at once, so
/// every method here costs a branch. Spans carry key <em>ids</em> (<c>provider#0</c>, the virtual key's id), never a
/// key, a prompt or an answer.
/// </remarks>
public sealed class ShepherdTracing : IDisposable
{
    public const string SourceName = "Shepherd";

    public const string RequestId = "shepherd.request.id";
    public const string Attempt = "shepherd.attempt";
    public const string Attempts = "shepherd.attempts";
    public const string CostUsd = "shepherd.cost_usd";
    public const string InputTokens = "gen_ai.usage.input_tokens";
    public const string OutputTokens = "gen_ai.usage.output_tokens";

    private const int MaxModelLength = 256;

    private readonly ActivitySource _source = new(SourceName, typeof(ShepherdTracing).Assembly.GetName().Version?.ToString(3));

    /// <summary>Starts the span of one client request, as the current activity: under the client's trace when it sent one, else a new trace.</summary>
    /// <param name="requestId">The request's id (a tag).</param>
    /// <param name="traceparent">The client's <c>traceparent</c> header, if any (W3C Trace Context).</param>
    /// <param name="tracestate">The client's <c>tracestate</c> header, if any.</param>
    public Activity? StartRequest(string requestId, string? traceparent, string? tracestate)
    {
        if (!_source.HasListeners())
        {
            return null;
        }

        // The client's trace, from its traceparent (a missing or malformed one starts a new trace). Whatever activity
        // is current is not a parent: ASP.NET Core's own request activity is not exported, so a span under it would
        // point to a parent no backend ever sees.
        _ = ActivityContext.TryParse(traceparent, string.IsNullOrEmpty(tracestate) ? null : tracestate, isRemote: true, out var parent);
        Activity.Current = null;

        var span = _source.StartActivity("chat", ActivityKind.Server, parent);
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag(ShepherdMetrics.OperationName, "chat");
            span.SetTag(RequestId, requestId);
        }

        return span;
    }

    /// <summary>Ends a request span with what the request turned out to be.</summary>
    /// <param name="span">From <see cref="StartRequest"/> (nothing happens for null).</param>
    /// <param name="status">The HTTP status the client got (499 when it went away).</param>
    /// <param name="record">The request's usage record (null when it was not accountable, e.g. refused before authentication).</param>
    /// <param name="modelLabel">The configured name of the model asked for, else <see cref="ShepherdMetrics.UnknownModel"/> (the span's name).</param>
    /// <param name="errorCode">The error code the client got, if any.</param>
    public static void EndRequest(Activity? span, int status, UsageRecord? record, string modelLabel, string? errorCode)
    {
        if (span is null)
        {
            return;
        }

        if (span.IsAllDataRequested)
        {
            span.DisplayName = "chat " + modelLabel;
            span.SetTag(ShepherdMetrics.StatusCode, status);
            if (record is not null)
            {
                if (record.RequestedModel is { } requested)
                {
                    span.SetTag(ShepherdMetrics.RequestModel, requested.Length > MaxModelLength ? requested[..MaxModelLength] : requested);
                }

                span.SetTag(ShepherdMetrics.ResponseModel, record.ServedModel);
                span.SetTag(ShepherdMetrics.ProviderName, record.Provider);
                span.SetTag(ShepherdMetrics.Deployment, record.Deployment);
                span.SetTag(ShepherdMetrics.KeyId, record.KeyId);
                span.SetTag(ShepherdMetrics.Team, record.Team);
                span.SetTag(Attempts, record.Attempts);
                span.SetTag(InputTokens, record.PromptTokens);
                span.SetTag(OutputTokens, record.CompletionTokens);
                span.SetTag(CostUsd, (double)record.Cost);
            }

            var error = record?.ErrorClass ?? errorCode;
            if (error is not null)
            {
                span.SetTag(ShepherdMetrics.ErrorType, error);
            }

            // A server span is in error for 5xx only: a 4xx is the caller's doing (OpenTelemetry's HTTP conventions).
            if (status >= 500)
            {
                span.SetStatus(ActivityStatusCode.Error, error);
            }
        }

        span.Dispose();
    }

    /// <summary>Starts the span of one upstream attempt (a child of the current request span).</summary>
    public Activity? StartAttempt(CatalogDeployment deployment, UpstreamKey key, int attempt)
    {
        if (!_source.HasListeners())
        {
            return null;
        }

        var span = _source.StartActivity("chat " + deployment.UpstreamModel, ActivityKind.Client);
        if (span is { IsAllDataRequested: true })
        {
            span.SetTag(ShepherdMetrics.OperationName, "chat");
            span.SetTag(ShepherdMetrics.RequestModel, deployment.UpstreamModel);
            span.SetTag(ShepherdMetrics.ProviderName, deployment.Handle.Name);
            span.SetTag(ShepherdMetrics.Deployment, deployment.Id);
            span.SetTag(ShepherdMetrics.UpstreamKeyId, key.Id);
            span.SetTag(Attempt, attempt);
        }

        return span;
    }

    /// <summary>Ends an attempt span: a success (for a stream: its end), a classified failure, or cancelled (a hedge lost, the client left).</summary>
    public static void EndAttempt(Activity? span, UpstreamFailure? failure, bool cancelled = false)
    {
        if (span is null)
        {
            return;
        }

        if (span.IsAllDataRequested)
        {
            var outcome = cancelled ? "cancelled" : failure is null ? "success" : ShepherdMetrics.ClassName(failure.Class);
            span.SetTag(ShepherdMetrics.Outcome, outcome);
            if (failure is not null && !cancelled)
            {
                span.SetTag(ShepherdMetrics.ErrorType, outcome);
                if (failure.UpstreamStatus > 0)
                {
                    span.SetTag(ShepherdMetrics.StatusCode, failure.UpstreamStatus);
                }

                span.SetStatus(ActivityStatusCode.Error, outcome);
            }
        }

        span.Dispose();
    }

    public void Dispose() => _source.Dispose();
}
