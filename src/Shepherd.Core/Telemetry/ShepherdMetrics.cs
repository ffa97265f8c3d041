namespace Shepherd.Telemetry;

using System.Collections.Concurrent;
using System.Collections.ObjectModel;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using Shepherd.Accounting;
using Shepherd.Errors;
using Shepherd.Resilience;
using Shepherd.Routing;

/// <summary>
/// Every instrument of the <c>Shepherd</c> meter, created once and passed where requests and attempts are seen.
/// Names and attributes follow the OpenTelemetry GenAI semantic conventions where they exist (<c>gen_ai.*</c>).
/// </summary>
/// <remarks>
/// Recording is cheap on the hot path: tags go in a <see cref="TagList"/> (a struct, inline up to eight tags), every
/// tag value is a string that already exists (configuration names, cached status codes and failure classes), and an
/// instrument nobody listens to returns at once. Values that come from outside the configuration (error codes, teams,
/// key ids) pass through a bounded set, so a flood of distinct values cannot explode the number of series.
/// </remarks>
public sealed class ShepherdMetrics : IDisposable
{
    public const string MeterName = "Shepherd";

    // Attribute names: the GenAI semantic conventions, then OpenTelemetry's general ones, then Shepherd's own.
    public const string OperationName = "gen_ai.operation.name";
    public const string RequestModel = "gen_ai.request.model";
    public const string ResponseModel = "gen_ai.response.model";
    public const string ProviderName = "gen_ai.provider.name";
    public const string TokenType = "gen_ai.token.type";
    public const string ErrorType = "error.type";
    public const string StatusCode = "http.response.status_code";
    public const string Team = "shepherd.team";
    public const string KeyId = "shepherd.key.id";
    public const string Deployment = "shepherd.deployment";
    public const string Outcome = "shepherd.outcome";
    public const string FailureClassName = "shepherd.failure.class";
    public const string FallbackFrom = "shepherd.fallback.from";
    public const string FallbackTo = "shepherd.fallback.to";
    public const string BreakerKind = "shepherd.breaker.kind";
    public const string UpstreamKeyId = "shepherd.upstream_key.id";

    /// <summary>The value of <see cref="RequestModel"/> when the client named no configured model (bounded cardinality).</summary>
    public const string UnknownModel = "unknown";

    /// <summary>The value a bounded attribute takes once too many distinct values were seen.</summary>
    public const string Other = "other";

    private const string Chat = "chat";

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly bool _keyIds;
    private readonly string[] _statusCodes = new string[600];
    private readonly BoundedValues _errorTypes = new(100);
    private readonly BoundedValues _teams = new(1_000);
    private readonly BoundedValues _keys = new(1_000);
    private readonly Histogram<long> _tokens;
    private readonly Histogram<double> _duration;
    private readonly Histogram<double> _timeToFirstToken;
    private readonly Counter<long> _requests;
    private readonly UpDownCounter<long> _inFlight;
    private readonly Counter<long> _attempts;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _fallbacks;
    private readonly Histogram<double> _queueWait;
    private readonly Counter<double> _cost;
    private int _routingObserved;
    private int _usageObserved;

    /// <param name="factory">The host's meter factory (the meter is then scoped to it); none: a meter of its own.</param>
    /// <param name="keyIds">Label cost with the virtual key id too (<c>telemetry.metrics_key_ids</c>).</param>
    public ShepherdMetrics(IMeterFactory? factory = null, bool keyIds = false)
    {
        var version = typeof(ShepherdMetrics).Assembly.GetName().Version?.ToString(3);
        _meter = factory?.Create(new MeterOptions(MeterName) { Version = version }) ?? new Meter(MeterName, version);
        _ownsMeter = factory is null;
        _keyIds = keyIds;
        for (var i = 100; i < _statusCodes.Length; i++)
        {
            _statusCodes[i] = i.ToString(CultureInfo.InvariantCulture);
        }

        _tokens = _meter.CreateHistogram(
            "gen_ai.client.token.usage",
            "{token}",
            "Tokens used per request, by token type (input, output).",
            tags: null,
            new InstrumentAdvice<long> { HistogramBucketBoundaries = TokenBoundaries });
        _duration = _meter.CreateHistogram(
            "gen_ai.server.request.duration",
            "s",
            "Time from receiving a chat request to its last byte.",
            tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBoundaries });
        _timeToFirstToken = _meter.CreateHistogram(
            "gen_ai.server.time_to_first_token",
            "s",
            "Time from receiving a streamed chat request to its first chunk sent to the client.",
            tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBoundaries });
        _requests = _meter.CreateCounter<long>("shepherd.requests", "{request}", "Chat requests from authenticated callers, by model, provider, status code and error type.");
        _inFlight = _meter.CreateUpDownCounter<long>("shepherd.requests.in_flight", "{request}", "Chat requests being served now.");
        _attempts = _meter.CreateCounter<long>("shepherd.upstream.attempts", "{attempt}", "Upstream attempts, by deployment and outcome (success or failure class).");
        _retries = _meter.CreateCounter<long>("shepherd.retries", "{attempt}", "Upstream attempts after a request's first, by deployment tried and the failure class that caused them.");
        _fallbacks = _meter.CreateCounter<long>("shepherd.fallbacks", "{fallback}", "Requests handed to a fallback model, from the requested model to the fallback.");
        _queueWait = _meter.CreateHistogram(
            "shepherd.queue.wait",
            "s",
            "Time spent waiting for a slot of a deployment with max_concurrency.",
            tags: null,
            new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBoundaries });
        _cost = _meter.CreateCounter<double>("shepherd.cost", "usd", "What requests cost, in USD at the configured prices, by served model, provider and team.");
    }

    /// <summary>Bucket boundaries of the duration histograms, in seconds (1 ms … 120 s).</summary>
    public static ReadOnlyCollection<double> DurationBoundaries { get; } =
        Array.AsReadOnly(new[] { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120 });

    /// <summary>Bucket boundaries of the token histogram (1 … 1M, powers of four as the GenAI conventions suggest).</summary>
    public static ReadOnlyCollection<long> TokenBoundaries { get; } =
        Array.AsReadOnly(new long[] { 1, 4, 16, 64, 256, 1_024, 4_096, 16_384, 65_536, 262_144, 1_048_576 });

    /// <summary>Whether <paramref name="instrument"/> is one of this meter's (not another gateway's in the same process).</summary>
    public bool Owns(Instrument instrument) => ReferenceEquals(instrument.Meter, _meter);

    /// <summary>A chat request started (<see cref="RequestEnded"/> must follow).</summary>
    public void RequestStarted() => _inFlight.Add(1);

    public void RequestEnded() => _inFlight.Add(-1);

    /// <summary>Records the request-level instruments from a request's usage record.</summary>
    /// <param name="record">The request as it is accounted.</param>
    /// <param name="requestModel">The configured name of the model or virtual model the client asked for, else <see cref="UnknownModel"/>.</param>
    public void RecordRequest(UsageRecord record, string requestModel)
    {
        var errorType = record.ErrorClass is { } error ? _errorTypes.Get(error) : null;
        if (_requests.Enabled)
        {
            var tags = Tags(requestModel, record);
            tags.Add(StatusCode, Status(record.Status));
            if (errorType is not null)
            {
                tags.Add(ErrorType, errorType);
            }

            _requests.Add(1, tags);
        }

        if (_duration.Enabled || _timeToFirstToken.Enabled)
        {
            var tags = Tags(requestModel, record);
            tags.Add(OperationName, Chat);
            if (errorType is not null)
            {
                tags.Add(ErrorType, errorType);
            }

            _duration.Record(record.LatencyMs / 1000.0, tags);
            if (record.TimeToFirstTokenMs is { } firstToken)
            {
                _timeToFirstToken.Record(firstToken / 1000.0, tags);
            }
        }

        if (_tokens.Enabled && (record.PromptTokens > 0 || record.CompletionTokens > 0))
        {
            var tags = Tags(requestModel, record);
            tags.Add(OperationName, Chat);
            tags.Add(TokenType, "input");
            _tokens.Record(record.PromptTokens, tags);
            tags[tags.Count - 1] = new KeyValuePair<string, object?>(TokenType, "output");
            _tokens.Record(record.CompletionTokens, tags);
        }

        if (_cost.Enabled && record.ServedModel is not null)
        {
            var tags = new TagList { { ResponseModel, record.ServedModel } };
            if (record.Provider is { } provider)
            {
                tags.Add(ProviderName, provider);
            }

            if (record.Team is { } team)
            {
                tags.Add(Team, _teams.Get(team));
            }

            if (_keyIds)
            {
                tags.Add(KeyId, _keys.Get(record.KeyId));
            }

            _cost.Add((double)record.Cost, tags);
        }
    }

    /// <summary>One upstream attempt was sent; <paramref name="failure"/> is null when it succeeded (for a stream: reached its first content).</summary>
    public void RecordAttempt(CatalogDeployment deployment, UpstreamFailure? failure, bool cancelled = false)
    {
        if (_attempts.Enabled)
        {
            _attempts.Add(1, new TagList
            {
                { Deployment, deployment.Id },
                { ProviderName, deployment.Handle.Name },
                { Outcome, cancelled ? "cancelled" : failure is null ? "success" : ClassName(failure.Class) },
            });
        }
    }

    /// <summary>An attempt after the request's first: on <paramref name="deployment"/>, because of <paramref name="cause"/> (none: a hedge).</summary>
    public void RecordRetry(CatalogDeployment deployment, UpstreamFailure? cause)
    {
        if (_retries.Enabled)
        {
            _retries.Add(1, new TagList
            {
                { Deployment, deployment.Id },
                { ProviderName, deployment.Handle.Name },
                { FailureClassName, cause is null ? "hedge" : ClassName(cause.Class) },
            });
        }
    }

    public void RecordFallback(CatalogModel from, CatalogModel to)
    {
        if (_fallbacks.Enabled)
        {
            _fallbacks.Add(1, new TagList { { FallbackFrom, from.Name }, { FallbackTo, to.Name } });
        }
    }

    /// <summary>Time spent in <see cref="DeploymentState.EnterAsync"/>; <paramref name="admitted"/> false when the queue was full or the wait timed out.</summary>
    public void RecordQueueWait(CatalogDeployment deployment, long startTimestamp, bool admitted)
    {
        if (_queueWait.Enabled)
        {
            _queueWait.Record(
                Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds,
                new TagList { { Deployment, deployment.Id }, { Outcome, admitted ? "admitted" : "rejected" } });
        }
    }

    /// <summary>Publishes <c>shepherd.breaker.state</c> (0 closed, 1 half-open, 2 open) for every deployment and upstream key (call once).</summary>
    public void ObserveRouting(ModelCatalog catalog, IEnumerable<ProviderHandle> providers, TimeProvider time)
    {
        if (Interlocked.Exchange(ref _routingObserved, 1) != 0)
        {
            return;
        }

        var handles = providers.ToArray();
        _meter.CreateObservableGauge(
            "shepherd.breaker.state",
            () => BreakerStates(catalog, handles, time.GetUtcNow()),
            "{state}",
            "Circuit breaker state per deployment and per upstream key: 0 closed, 1 half-open, 2 open.");
    }

    /// <summary>Publishes the usage recorder's counters (call once).</summary>
    public void ObserveUsageSink(UsageRecorder recorder)
    {
        if (Interlocked.Exchange(ref _usageObserved, 1) != 0)
        {
            return;
        }

        _meter.CreateObservableCounter("shepherd.usage_sink.written", () => recorder.Written, "{record}", "Usage records written to the store (replays included).");
        _meter.CreateObservableCounter("shepherd.usage_sink.spilled", () => recorder.Spilled, "{record}", "Usage records spilled to the local file (queue full or store unavailable).");
        _meter.CreateObservableCounter("shepherd.usage_sink.dropped", () => recorder.Dropped, "{record}", "Usage records lost because even the spill file could not be written.");
        _meter.CreateObservableGauge("shepherd.usage_sink.queue", () => recorder.Queued, "{record}", "Usage records waiting in memory.");
    }

    /// <summary>The failure class as an attribute value (snake_case).</summary>
    public static string ClassName(FailureClass failureClass) => failureClass switch
    {
        FailureClass.CallerFault => "caller_fault",
        FailureClass.BadCredential => "bad_credential",
        FailureClass.RateLimited => "rate_limited",
        FailureClass.Transient => "transient",
        FailureClass.Timeout => "timeout",
        FailureClass.ContextOverflow => "context_overflow",
        _ => Other,
    };

    public void Dispose()
    {
        // A meter from the host's factory is disposed with the factory.
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private static TagList Tags(string requestModel, UsageRecord record)
    {
        var tags = new TagList { { RequestModel, requestModel } };
        if (record.ServedModel is { } served)
        {
            tags.Add(ResponseModel, served);
        }

        if (record.Provider is { } provider)
        {
            tags.Add(ProviderName, provider);
        }

        return tags;
    }

    private string Status(int status) =>
        (uint)status < (uint)_statusCodes.Length && _statusCodes[status] is { } text ? text : Other;

    private static List<Measurement<int>> BreakerStates(ModelCatalog catalog, ProviderHandle[] providers, DateTimeOffset now)
    {
        var states = new List<Measurement<int>>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var model in catalog.Models)
        {
            foreach (var deployment in model.Deployments)
            {
                // Two models served by the same upstream model share one breaker: one series.
                if (seen.Add(deployment.Id))
                {
                    states.Add(new Measurement<int>(
                        State(deployment.State.Breaker, now),
                        new KeyValuePair<string, object?>(BreakerKind, "deployment"),
                        new KeyValuePair<string, object?>(Deployment, deployment.Id),
                        new KeyValuePair<string, object?>(ProviderName, deployment.Handle.Name)));
                }
            }
        }

        foreach (var handle in providers)
        {
            foreach (var key in handle.Keys.Keys)
            {
                states.Add(new Measurement<int>(
                    State(key.Breaker, now),
                    new KeyValuePair<string, object?>(BreakerKind, "key"),
                    new KeyValuePair<string, object?>(UpstreamKeyId, key.Id),
                    new KeyValuePair<string, object?>(ProviderName, handle.Name)));
            }
        }

        return states;
    }

    private static int State(ICircuitBreaker breaker, DateTimeOffset now) => breaker.Snapshot(now).State switch
    {
        BreakerState.Open => 2,
        BreakerState.HalfOpen => 1,
        _ => 0,
    };

    /// <summary>Values taken as they are up to a limit of distinct ones, then <see cref="Other"/>.</summary>
    private sealed class BoundedValues(int limit)
    {
        private readonly ConcurrentDictionary<string, string> _values = new(StringComparer.Ordinal);
        private int _count;

        public string Get(string value)
        {
            if (_values.TryGetValue(value, out var known))
            {
                return known;
            }

            // Counted apart: ConcurrentDictionary.Count takes every lock. A race may overshoot the limit by a few.
            if (Volatile.Read(ref _count) >= limit)
            {
                return Other;
            }

            if (_values.TryAdd(value, value))
            {
                Interlocked.Increment(ref _count);
            }

            return value;
        }
    }
}
