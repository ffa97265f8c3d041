namespace Shepherd.Routing;

using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Errors;
using Shepherd.Health;
using Shepherd.Providers;
using Shepherd.Resilience;
using Shepherd.Routing.Strategies;
using Shepherd.Telemetry;

/// <summary>Which deployment served a request, how many upstream attempts it took, and whether a fallback served it.</summary>
public sealed record RouteInfo(CatalogModel Model, CatalogDeployment Deployment, int Attempts)
{
    /// <summary>The model the client asked for, when a fallback model served the request instead.</summary>
    public CatalogModel? FallbackFrom { get; init; }

    /// <summary>The upstream key used (<c>provider#index</c>), never the key itself.</summary>
    public string KeyId { get; init; } = "";
}

/// <summary>The result of executing a request: a value, or the error the client gets; plus the route taken.</summary>
public readonly struct Execution<T>
    where T : class
{
    public Execution(T? value, GatewayError? error, RouteInfo? route, UpstreamFailure? failure = null)
    {
        Value = value;
        Error = error;
        Route = route;
        Failure = failure;
    }

    public T? Value { get; }

    public GatewayError? Error { get; }

    /// <summary>The upstream failure behind <see cref="Error"/>, when there was one.</summary>
    public UpstreamFailure? Failure { get; }

    public RouteInfo? Route { get; }

    public bool IsSuccess => Error is null;
}

/// <summary>How one request is to be executed.</summary>
public sealed record ExecutionOptions
{
    public static readonly ExecutionOptions Default = new();

    /// <summary>Replaces the model's configured fallback chain (the <c>x-shepherd-fallbacks</c> header).</summary>
    public IReadOnlyList<CatalogModel>? Fallbacks { get; init; }

    /// <summary>Told the route of each attempt before it is sent (so an abandoned request is still logged with it).</summary>
    public Action<RouteInfo>? OnRoute { get; init; }

    /// <summary>Estimated prompt tokens, when already counted (deployment TPM and the cost strategy use it).</summary>
    public int? PromptTokens { get; init; }

    /// <summary>The output tokens the request may generate (for the same purposes).</summary>
    public int MaxOutputTokens { get; init; } = 1024;

    public string RequestId { get; init; } = "";
}

/// <summary>
/// The one place that decides what an upstream failure means for a request; adapters only classify.
/// </summary>
/// <remarks>
/// For each model of the chain (the model, then its fallbacks): the model's strategy orders the deployments whose
/// breaker admits traffic; each attempt takes a usable upstream key (round-robin, skipping keys that are out, cooling
/// down after a 429, or already tried) and a slot of the deployment's bounded queue, then sends. Caller faults are
/// returned as they are; a refused key is taken out and the next key tried at once; a 429 cools the key down (honouring
/// <c>retry-after</c>) and moves on; transient failures and timeouts move to the next deployment, and a deployment already
/// tried is retried only after exponential backoff with full jitter (and only on the last model of the chain: before it,
/// the next model is the retry). Every attempt after the first (hedges included) spends the shared retry budget and
/// counts towards <c>max_attempts</c>, and the whole request has a deadline, so an outage is never amplified. When every
/// deployment of a model failed or is unavailable, the next model of the chain takes over; a prompt too long for a model
/// goes only to later models with a larger context window. A stream is committed at its first content chunk: until then, any failure (error status,
/// malformed or empty first event, no first token within <c>first_byte_ms</c>) fails over exactly like a non-streamed
/// request. Optional hedging races a second deployment when the first is slow to its first byte.
/// </remarks>
public sealed partial class ChatExecutor
{
    private static readonly Func<double> Uniform = Random.Shared.NextDouble;

    private readonly ProviderStatusBoard _status;
    private readonly RoutingConfig _routing;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ShepherdMetrics? _metrics;
    private readonly ShepherdTracing? _tracing;

    /// <param name="metrics">Where attempts, retries, fallbacks and queue waits are counted (none: not counted).</param>
    /// <param name="tracing">Where attempt spans start (none: no spans).</param>
    public ChatExecutor(ProviderStatusBoard status, ShepherdConfig config, TimeProvider time, ILogger<ChatExecutor> logger, ShepherdMetrics? metrics = null, ShepherdTracing? tracing = null)
    {
        _status = status;
        _routing = config.Routing;
        _time = time;
        _logger = logger;
        _metrics = metrics;
        _tracing = tracing;
        Budget = new RetryBudget(config.Routing.RetryBudget);
    }

    public RetryBudget Budget { get; }

    public ValueTask<Execution<ChatCompletion>> CompleteAsync(ChatRequest request, CatalogModel model, ExecutionOptions? options, CancellationToken cancellationToken) =>
        RunAsync(request, model, options ?? ExecutionOptions.Default, CompletionKind.Instance, cancellationToken);

    public ValueTask<Execution<ChatStream>> StreamAsync(ChatRequest request, CatalogModel model, ExecutionOptions? options, CancellationToken cancellationToken) =>
        RunAsync(request, model, options ?? ExecutionOptions.Default, StreamKind.Instance, cancellationToken);

    /// <summary>
    /// The order in which a request's deployments would be tried now — the model's, by its strategy, then each
    /// fallback model's — each with the reason for its place (for <c>route explain</c> and the decision log).
    /// </summary>
    public static IReadOnlyList<(CatalogDeployment Deployment, string Reason)> Preview(CatalogModel model, DateTimeOffset now, int? promptTokens = null, int maxOutputTokens = 1024)
    {
        var result = new List<(CatalogDeployment, string)>();
        Describe(model, null);
        for (var f = 0; f < model.Fallbacks.Count; f++)
        {
            Describe(model.Fallbacks[f], $"fallback {f + 1} ({model.Fallbacks[f].Name})");
        }

        return result;

        void Describe(CatalogModel m, string? prefix)
        {
            var deployments = m.Deployments;
            var candidates = new DeploymentCandidate[deployments.Count];
            for (var i = 0; i < deployments.Count; i++)
            {
                candidates[i] = Candidate(deployments[i], i, promptTokens, maxOutputTokens);
            }

            var order = new int[candidates.Length];
            m.Strategy.Order(candidates, order, () => 0.5);
            foreach (var position in order)
            {
                var d = deployments[candidates[position].Index];
                var reason = $"{m.Strategy.Name}: {m.Strategy.Describe(candidates[position])}";
                if (!d.State.Breaker.IsAvailable(now))
                {
                    reason += " — breaker open, skipped";
                }

                result.Add((d, prefix is null ? reason : $"{prefix}, {reason}"));
            }
        }
    }

    private async ValueTask<Execution<T>> RunAsync<T>(ChatRequest request, CatalogModel requested, ExecutionOptions options, AttemptKind<T> kind, CancellationToken cancellationToken)
        where T : class
    {
        var started = _time.GetUtcNow();
        var deadline = started + TimeSpan.FromMilliseconds(_routing.DeadlineMs);
        Budget.OnRequest(started);
        var state = new RunState<T> { Deadline = deadline };
        var chain = options.Fallbacks ?? requested.Fallbacks;

        for (var c = -1; c < chain.Count; c++)
        {
            var model = c < 0 ? requested : chain[c];

            // After a prompt that was too long, only a model with a larger window can help (also once a later
            // model failed for another reason: the prompt has not become shorter).
            if (model.ContextWindow <= state.OverflowWindow)
            {
                continue;
            }

            if (c >= 0)
            {
                _metrics?.RecordFallback(requested, model);
            }

            // Only the last model of the chain retries deployments it already tried: before it, the next model is the
            // retry, and retrying here would spend the attempts the fallbacks need.
            var last = c == chain.Count - 1;
            var result = await RunModelAsync(request, requested, model, options, kind, state, last, cancellationToken).ConfigureAwait(false);
            if (result is { } done)
            {
                return done;
            }

            if (state.Stop)
            {
                break;
            }
        }

        if (state.LastFailure is { } failure)
        {
            return new Execution<T>(null, failure.ToClientError(), state.LastRoute, failure);
        }

        // Nothing was sent: every deployment was unavailable (breakers open, queues full, keys out).
        var error = new GatewayError(503, $"No deployment of the model '{requested.Name}' can take the request right now; try again shortly.", "server_error", "no_available_deployment")
        {
            RetryAfter = state.RetryAfter ?? TimeSpan.FromSeconds(1),
        };
        return new Execution<T>(null, error, state.LastRoute);
    }

    /// <returns>The final result when this model decided the request, null to go on with the next model.</returns>
    private async ValueTask<Execution<T>?> RunModelAsync<T>(
        ChatRequest request,
        CatalogModel requested,
        CatalogModel model,
        ExecutionOptions options,
        AttemptKind<T> kind,
        RunState<T> state,
        bool lastInChain,
        CancellationToken cancellationToken)
        where T : class
    {
        var deployments = model.Deployments;
        var count = deployments.Count;
        var order = new int[count];
        Order(model, order, options);
        var tried = new bool[count];
        var retriedAfter = new TimeSpan?[count];
        var hedgeFirst = model.Config.Hedging is not null && state.Attempts == 0;
        var deadline = state.Deadline;

        // Passes over the ordered deployments: a deployment is tried again (after backoff) in a later pass.
        var passes = lastInChain ? _routing.MaxAttempts : 1;
        for (var pass = 0; pass < passes; pass++)
        {
            var attemptedThisPass = false;
            for (var o = 0; o < count; o++)
            {
                var index = order[o];
                var deployment = deployments[index];
                if (state.Attempts >= _routing.MaxAttempts)
                {
                    state.Stop = true;
                    return null;
                }

                var now = _time.GetUtcNow();
                if (now >= deadline)
                {
                    state.Stop = true;
                    return null;
                }

                if (tried[index])
                {
                    // Retrying the same deployment: back off (never shorter than its retry-after), within the deadline.
                    var delay = Backoff.Delay(pass, TimeSpan.FromMilliseconds(_routing.BackoffBaseMs), TimeSpan.FromMilliseconds(_routing.BackoffMaxMs), retriedAfter[index], Uniform());
                    if (now + delay >= deadline)
                    {
                        continue;
                    }

                    if (delay > TimeSpan.Zero)
                    {
                        await Task.Delay(delay, _time, cancellationToken).ConfigureAwait(false);
                    }
                }

                if (hedgeFirst && count > 1)
                {
                    hedgeFirst = false;
                    var hedged = await HedgeAsync(request, requested, model, options, kind, state, order, tried, cancellationToken).ConfigureAwait(false);
                    if (hedged is { } result)
                    {
                        return result;
                    }

                    if (model.ContextWindow <= state.OverflowWindow)
                    {
                        // The prompt is too long for this model: its other deployments cannot help either.
                        return null;
                    }

                    attemptedThisPass = true;
                    continue;
                }

                var outcome = await TryDeploymentAsync(request, requested, model, deployment, options, kind, state, cancellationToken).ConfigureAwait(false);
                switch (outcome)
                {
                    case AttemptResult.Skipped:
                        continue;
                    case AttemptResult.Done:
                        return state.Result;
                    case AttemptResult.NextModel:
                        return null;
                    case AttemptResult.Stop:
                        state.Stop = true;
                        return null;
                }

                attemptedThisPass = true;
                tried[index] = true;
                retriedAfter[index] = state.LastFailure?.RetryAfter;
            }

            if (!attemptedThisPass)
            {
                break;
            }
        }

        return null;
    }

    private enum AttemptResult
    {
        /// <summary>Nothing was sent (breaker open, queue full, no usable key, upstream limit reached).</summary>
        Skipped,

        /// <summary>Sent and failed in a way worth trying elsewhere.</summary>
        Failed,

        /// <summary>The request is decided (success or a failure to return as is).</summary>
        Done,

        /// <summary>Give up on this model (e.g. the prompt is too long for it).</summary>
        NextModel,

        /// <summary>Give up entirely (retry budget spent).</summary>
        Stop,
    }

    /// <summary>One deployment: keys are tried in turn while they are refused or rate limited; then the next deployment.</summary>
    private async ValueTask<AttemptResult> TryDeploymentAsync<T>(
        ChatRequest request,
        CatalogModel requested,
        CatalogModel model,
        CatalogDeployment deployment,
        ExecutionOptions options,
        AttemptKind<T> kind,
        RunState<T> state,
        CancellationToken cancellationToken)
        where T : class
    {
        var result = AttemptResult.Skipped;
        ulong triedKeys = 0;
        while (true)
        {
            var now = _time.GetUtcNow();
            if (!deployment.State.Breaker.IsAvailable(now))
            {
                NoteUnavailable(state, deployment.State.Breaker.Snapshot(now).OpenUntil, now);
                return result;
            }

            var key = deployment.Handle.Keys.NextUsable(now, triedKeys);
            if (key is null)
            {
                NoteUnavailable(state, deployment.Handle.Keys.Keys.Select(k => k.CoolingUntil(now)).Where(t => t is not null).Min(), now);
                return result;
            }

            // max_attempts counts every attempt, the next key's included.
            if (state.Attempts >= _routing.MaxAttempts)
            {
                return AttemptResult.Stop;
            }

            if (state.Attempts > 0 && !Budget.TryRetry(now))
            {
                LogBudgetSpent(_logger, options.RequestId, deployment.Id);
                return AttemptResult.Stop;
            }

            var (outcome, route) = await AttemptAsync(request, requested, model, deployment, key, options, kind, state, cancellationToken).ConfigureAwait(false);
            if (outcome is null)
            {
                // Not sent: the deployment's queue is full or its upstream limit reached.
                return result;
            }

            var attempt = outcome.Value;
            if (attempt.IsSuccess)
            {
                state.Result = new Execution<T>(attempt.Value, null, route);
                return AttemptResult.Done;
            }

            var failure = attempt.Failure!;
            state.LastFailure = failure;
            state.LastRoute = route;
            LogAttemptFailed(_logger, options.RequestId, deployment.Id, key.Id, failure.Class.ToString(), failure.UpstreamStatus, state.Attempts);
            switch (failure.Class)
            {
                case FailureClass.CallerFault:
                    state.Result = new Execution<T>(null, failure.ToClientError(), route, failure);
                    return AttemptResult.Done;
                case FailureClass.ContextOverflow:
                    state.OverflowWindow = Math.Max(state.OverflowWindow, model.ContextWindow);
                    return AttemptResult.NextModel;
                case FailureClass.BadCredential:
                case FailureClass.RateLimited:
                    // That key is out (or resting): the next key of the same deployment is tried at once.
                    triedKeys |= UpstreamKeyRing.Bit(key.Index);
                    result = AttemptResult.Failed;
                    continue;
                default:
                    return AttemptResult.Failed;
            }
        }
    }

    private static void NoteUnavailable<T>(RunState<T> state, DateTimeOffset? until, DateTimeOffset now)
        where T : class
    {
        if (until is { } when && when > now)
        {
            var wait = when - now;
            state.RetryAfter = state.RetryAfter is { } current && current < wait ? current : wait;
        }
    }

    /// <summary>Sends one attempt and records what it says about the deployment and the key.</summary>
    /// <returns>Null when nothing was sent (no slot, upstream limit), else the outcome and its route.</returns>
    private async ValueTask<(UpstreamOutcome<T>? Outcome, RouteInfo Route)> AttemptAsync<T>(
        ChatRequest request,
        CatalogModel requested,
        CatalogModel model,
        CatalogDeployment deployment,
        UpstreamKey key,
        ExecutionOptions options,
        AttemptKind<T> kind,
        RunState<T> state,
        CancellationToken cancellationToken,
        CancellationTokenSource? race = null)
        where T : class
    {
        var route = new RouteInfo(model, deployment, state.Attempts + 1)
        {
            FallbackFrom = ReferenceEquals(model, requested) ? null : requested,
            KeyId = key.Id,
        };
        var queued = Stopwatch.GetTimestamp();
        var entered = await deployment.State.EnterAsync(_time, cancellationToken).ConfigureAwait(false);
        if (deployment.State.MaxConcurrency is not null)
        {
            _metrics?.RecordQueueWait(deployment, queued, entered);
        }

        if (!entered)
        {
            state.RetryAfter ??= TimeSpan.FromSeconds(1);
            LogQueueFull(_logger, options.RequestId, deployment.Id);
            return (null, route);
        }

        var now = _time.GetUtcNow();
        if (!deployment.State.Breaker.TryPass(now, out var probe))
        {
            deployment.State.Exit();
            return (null, route);
        }

        // Counted against the upstream's RPM/TPM only now that it is sure to be sent (not when refused by the queue).
        var tokens = (options.PromptTokens ?? 0) + (long)options.MaxOutputTokens;
        if (!deployment.State.TryCountUpstream(now, tokens))
        {
            deployment.State.Breaker.OnAbandoned(probe);
            deployment.State.Exit();
            state.RetryAfter ??= TimeSpan.FromSeconds(1);
            return (null, route);
        }

        if (state.Attempts > 0)
        {
            _metrics?.RecordRetry(deployment, state.LastFailure);
        }

        state.Attempts++;
        state.LastRoute = route;
        options.OnRoute?.Invoke(route);
        var span = _tracing?.StartAttempt(deployment, key, state.Attempts);
        var call = new UpstreamCall(request, deployment.UpstreamModel, key.Secret, model.Config.MaxOutputTokens ?? 4096);
        var attempt = new AttemptCancellation(_time, state.Deadline, cancellationToken, race?.Token ?? default);
        var started = Stopwatch.GetTimestamp();
        UpstreamOutcome<T> outcome;
        try
        {
            outcome = await kind.SendAsync(
                deployment,
                call,
                attempt,
                failure =>
                {
                    Settle(deployment, key, probe: false, failure);
                    ShepherdTracing.EndAttempt(span, failure);
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The request's deadline passed, or a hedging race was decided elsewhere: cancelled, not failed (neither
            // says anything about the deployment).
            var outOfTime = attempt.DeadlinePassed;
            Abandon();
            return (UpstreamOutcome<T>.Failed(outOfTime
                ? AttemptCancellation.DeadlineFailure(deployment.Handle.Name)
                : new UpstreamFailure(FailureClass.Transient, 0, "cancelled: another attempt won")), route);
        }
        catch
        {
            Abandon();
            throw;
        }

        void Abandon()
        {
            _metrics?.RecordAttempt(deployment, null, cancelled: true);
            ShepherdTracing.EndAttempt(span, null, cancelled: true);
            deployment.State.Breaker.OnAbandoned(probe);
            deployment.State.Exit();
            attempt.Dispose();
        }

        now = _time.GetUtcNow();
        var lostRace = race?.IsCancellationRequested == true;
        _metrics?.RecordAttempt(deployment, outcome.Failure, cancelled: lostRace && !outcome.IsSuccess);
        if (outcome.IsSuccess)
        {
            deployment.State.RecordFirstByte(Stopwatch.GetElapsedTime(started));
            deployment.State.Breaker.OnSuccess(now, probe);
            key.Breaker.OnSuccess(now, wasProbe: false);
            _status.RecordSuccess(deployment.Handle.Name, 200);
            if (!kind.HoldsSlot)
            {
                deployment.State.Exit();
                attempt.Dispose();

                // A stream's span ends with the stream (see Settle above).
                ShepherdTracing.EndAttempt(span, null);
            }

            return (outcome, route);
        }

        ShepherdTracing.EndAttempt(span, outcome.Failure, cancelled: lostRace);
        deployment.State.Exit();
        var deadlinePassed = attempt.DeadlinePassed;
        attempt.Dispose();
        if (lostRace || deadlinePassed)
        {
            // A hedging loser (cancelled because another attempt won) or the request out of time: neither says
            // anything about this deployment.
            deployment.State.Breaker.OnAbandoned(probe);
        }
        else
        {
            Record(deployment, key, outcome.Failure!, probe, now);
        }

        return (outcome, route);
    }

    /// <summary>What a finished stream says about its deployment (the slot is released here).</summary>
    private void Settle(CatalogDeployment deployment, UpstreamKey key, bool probe, UpstreamFailure? failure)
    {
        deployment.State.Exit();
        if (failure is not null)
        {
            Record(deployment, key, failure, probe, _time.GetUtcNow());
        }
    }

    private void Record(CatalogDeployment deployment, UpstreamKey key, UpstreamFailure failure, bool probe, DateTimeOffset now)
    {
        switch (failure.Class)
        {
            case FailureClass.CallerFault:
            case FailureClass.ContextOverflow:
                // The request's fault, not the upstream's.
                deployment.State.Breaker.OnAbandoned(probe);
                return;
            case FailureClass.BadCredential:
                key.MarkDead(now);
                key.Breaker.OnFailure(now, wasProbe: false);
                deployment.State.Breaker.OnAbandoned(probe);
                break;
            case FailureClass.RateLimited:
                key.CoolUntil(now + (failure.RetryAfter ?? TimeSpan.FromSeconds(1)));
                key.Breaker.OnFailure(now, wasProbe: false);
                deployment.State.Breaker.OnFailure(now, probe);
                break;
            default:
                deployment.State.Breaker.OnFailure(now, probe);
                break;
        }

        _status.RecordFailure(deployment.Handle.Name, failure);
    }

    /// <summary>
    /// Starts the first attempt; if it has no first byte within the hedging delay, races a second deployment.
    /// The first success wins; the other is cancelled.
    /// </summary>
    private async ValueTask<Execution<T>?> HedgeAsync<T>(
        ChatRequest request,
        CatalogModel requested,
        CatalogModel model,
        ExecutionOptions options,
        AttemptKind<T> kind,
        RunState<T> state,
        int[] order,
        bool[] tried,
        CancellationToken cancellationToken)
        where T : class
    {
        var pending = new List<(Task<(UpstreamOutcome<T>? Outcome, RouteInfo Route)> Task, CancellationTokenSource Race, CatalogDeployment Deployment)>();
        var maxAttempts = Math.Clamp(model.Config.Hedging!.MaxAttempts, 1, order.Length);
        var next = 0;
        var started = 0;
        var attemptsBefore = state.Attempts;

        bool StartNext()
        {
            while (next < order.Length && attemptsBefore + started < _routing.MaxAttempts)
            {
                var index = order[next++];
                var deployment = model.Deployments[index];
                var now = _time.GetUtcNow();
                var key = deployment.Handle.Keys.NextUsable(now);
                if (key is null || !deployment.State.Breaker.IsAvailable(now))
                {
                    continue;
                }

                // A hedge (or a failover inside the race) is an extra attempt like any retry: paid from the retry budget.
                if (attemptsBefore + started > 0 && !Budget.TryRetry(now))
                {
                    LogBudgetSpent(_logger, options.RequestId, deployment.Id);
                    return false;
                }

                started++;

                tried[index] = true;
                var race = new CancellationTokenSource();
                var task = AttemptAsync(request, requested, model, deployment, key, options, kind, state, cancellationToken, race).AsTask();
                pending.Add((task, race, deployment));
                return true;
            }

            return false;
        }

        if (!StartNext())
        {
            return null;
        }

        var delay = model.Config.Hedging.DelayMs > 0
            ? TimeSpan.FromMilliseconds(model.Config.Hedging.DelayMs)
            : pending[0].Deployment.State.P95FirstByte() ?? TimeSpan.FromSeconds(2);

        Execution<T>? winner = null;
        while (pending.Count > 0)
        {
            var tasks = pending.Select(p => (Task)p.Task).ToList();
            Task? timer = null;
            if (pending.Count < maxAttempts && next < order.Length)
            {
                timer = Task.Delay(delay, _time, cancellationToken);
                tasks.Add(timer);
            }

            var finished = await Task.WhenAny(tasks).ConfigureAwait(false);
            if (finished == timer)
            {
                if (StartNext())
                {
                    LogHedged(_logger, options.RequestId, pending[^1].Deployment.Id, delay.TotalMilliseconds);
                }

                continue;
            }

            var position = pending.FindIndex(p => p.Task == finished);
            var (task, race, _) = pending[position];
            pending.RemoveAt(position);
            race.Dispose();
            var (outcome, route) = await task.ConfigureAwait(false);
            if (outcome is { IsSuccess: true } success)
            {
                winner = new Execution<T>(success.Value, null, route);
                break;
            }

            if (outcome is { } failed)
            {
                state.LastFailure = failed.Failure;
                state.LastRoute = route;
                if (failed.Failure!.Class == FailureClass.CallerFault)
                {
                    winner = new Execution<T>(null, failed.Failure.ToClientError(), route, failed.Failure);
                    break;
                }

                if (failed.Failure.Class == FailureClass.ContextOverflow)
                {
                    // Every deployment of this model has the same window: stop racing, let a larger model try.
                    state.OverflowWindow = Math.Max(state.OverflowWindow, model.ContextWindow);
                    break;
                }
            }

            if (pending.Count == 0 && next < order.Length && pending.Count < maxAttempts)
            {
                StartNext();
            }
        }

        // The losers: cancel them; a success that still arrives is released unused.
        foreach (var (task, race, _) in pending)
        {
            await race.CancelAsync().ConfigureAwait(false);
            _ = task.ContinueWith(
                static (t, k) =>
                {
                    if (t.IsCompletedSuccessfully && t.Result.Outcome is { IsSuccess: true } late)
                    {
                        ((AttemptKind<T>)k!).Discard(late.Value!);
                    }
                },
                kind,
                CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously,
                TaskScheduler.Default);
        }

        return winner;
    }

    /// <summary>Fills <paramref name="order"/> with every deployment's index: available ones as the strategy orders them, then those whose breaker is open.</summary>
    private void Order(CatalogModel model, Span<int> order, ExecutionOptions options)
    {
        var deployments = model.Deployments;
        Span<DeploymentCandidate> candidates = deployments.Count <= 16 ? stackalloc DeploymentCandidate[16] : new DeploymentCandidate[deployments.Count];
        var now = _time.GetUtcNow();
        var available = 0;
        Span<int> unavailable = deployments.Count <= 16 ? stackalloc int[16] : new int[deployments.Count];
        var unavailableCount = 0;
        for (var i = 0; i < deployments.Count; i++)
        {
            if (deployments[i].State.Breaker.IsAvailable(now))
            {
                candidates[available++] = Candidate(deployments[i], i, options.PromptTokens, options.MaxOutputTokens);
            }
            else
            {
                unavailable[unavailableCount++] = i;
            }
        }

        // The strategy orders the available deployments; those whose breaker is open come last (skipped unless it half-opens meanwhile).
        var ordered = order[..available];
        model.Strategy.Order(candidates[..available], ordered, Uniform);
        for (var i = 0; i < available; i++)
        {
            ordered[i] = candidates[ordered[i]].Index;
        }

        for (var i = 0; i < unavailableCount; i++)
        {
            order[available + i] = unavailable[i];
        }
    }

    private static DeploymentCandidate Candidate(CatalogDeployment deployment, int index, int? promptTokens, int maxOutputTokens)
    {
        var price = deployment.Price;
        var cost = price is null ? 0m
            : promptTokens is { } prompt ? Pricing.WorstCase(prompt, maxOutputTokens, price)
            : price.Input + price.Output;
        return new DeploymentCandidate(index, deployment.Config.Priority, deployment.Config.Weight, deployment.State.InFlight, deployment.State.LatencyMs, cost);
    }

    /// <summary>Per-request bookkeeping of the executor; typed, so the decided execution (a struct) is stored without boxing.</summary>
    private sealed class RunState<T>
        where T : class
    {
        public int Attempts;
        public UpstreamFailure? LastFailure;
        public RouteInfo? LastRoute;
        public TimeSpan? RetryAfter;
        public int OverflowWindow;
        public bool Stop;

        /// <summary>When the request must be decided (<c>routing.deadline_ms</c> after it started).</summary>
        public DateTimeOffset Deadline;

        public Execution<T>? Result;
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "{RequestId} attempt {Attempt} on {Deployment} with key {KeyId} failed: {FailureClass} status={UpstreamStatus}")]
    private static partial void LogAttemptFailed(ILogger logger, string requestId, string deployment, string keyId, string failureClass, int upstreamStatus, int attempt);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "{RequestId} retry budget spent: not retrying on {Deployment}")]
    private static partial void LogBudgetSpent(ILogger logger, string requestId, string deployment);

    [LoggerMessage(EventId = 22, Level = LogLevel.Information, Message = "{RequestId} {Deployment} is at its concurrency limit and its queue is full (or the wait timed out): moving on")]
    private static partial void LogQueueFull(ILogger logger, string requestId, string deployment);

    [LoggerMessage(EventId = 23, Level = LogLevel.Information, Message = "{RequestId} no first byte after {DelayMs:F0} ms: hedging on {Deployment}")]
    private static partial void LogHedged(ILogger logger, string requestId, string deployment, double delayMs);
}
