namespace Shepherd.Limits;

using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Errors;
using Shepherd.Keys;
using Shepherd.Routing;
using Shepherd.Security;

/// <summary>
/// Everything that stands between an authenticated caller and the upstream, in the documented order: model access,
/// then rate limits, then money. Produces the lease that settlement closes.
/// </summary>
public sealed class Admission(ILimiter limiter, TokenEstimator estimator, int reserveOutputTokens, TimeProvider? clock = null)
{
    private readonly TimeProvider time = clock ?? TimeProvider.System;

    public ILimiter Limiter => limiter;

    /// <summary>403 <c>model_not_allowed</c> when the caller's key may not use <paramref name="model"/>.</summary>
    public static GatewayError? CheckModel(Caller caller, CatalogModel model) =>
        caller.Key is { } key && !key.Models.Allows(model)
            ? new GatewayError(403, $"This API key is not allowed to use the model '{model.Name}'.", "invalid_request_error", "model_not_allowed", "model")
            : null;

    /// <summary>For a request to a virtual model: 403 unless the key may use the model the router chose, or the router itself.</summary>
    public static GatewayError? CheckModel(Caller caller, CatalogModel model, string virtualModel) =>
        caller.Key is { } key && !key.Models.Allows(model) && !key.Models.AllowsVirtualModel(virtualModel)
            ? new GatewayError(403, $"This API key is not allowed to use the model '{model.Name}' (chosen by '{virtualModel}').", "invalid_request_error", "model_not_allowed", "model")
            : null;

    /// <summary>403 <c>ip_not_allowed</c> when the client address is outside the key's allow-list.</summary>
    public static GatewayError? CheckAddress(Caller caller, System.Net.IPAddress? address) =>
        caller.Key is { } key && !key.AllowsAddress(address)
            ? new GatewayError(403, "This API key may not be used from this IP address.", "invalid_request_error", "ip_not_allowed")
            : null;

    /// <summary>The output tokens a request is assumed to generate at most (for reservations).</summary>
    public int OutputReservation(ChatRequest request, CatalogModel model)
    {
        var ceiling = model.Config.MaxOutputTokens ?? int.MaxValue;
        return Math.Min(request.RequestedMaxOutputTokens ?? Math.Min(reserveOutputTokens, ceiling), ceiling) * Math.Max(1, request.N);
    }

    /// <summary>Whether admitting this caller or routing this model needs the prompt's token estimate.</summary>
    public static bool NeedsEstimate(Caller caller, CatalogModel model) =>
        caller.Key is { NeedsEstimate: true } || model.NeedsPromptTokens;

    public int EstimatePrompt(ChatRequest request) => estimator.EstimatePrompt(request);

    /// <summary>Checks and reserves the key's limits (nothing to do for the master key; an unlimited key only gets a lease that records its spend).</summary>
    /// <param name="promptTokens">The prompt estimate when already counted (else counted here if the key needs it).</param>
    public ValueTask<LimitDecision> AdmitAsync(Caller caller, ChatRequest request, CatalogModel model, int? promptTokens, CancellationToken cancellationToken)
    {
        if (caller.Key is not { } key)
        {
            return ValueTask.FromResult(default(LimitDecision));
        }

        if (!key.HasLimits)
        {
            // Nothing to check or reserve; the lease still names the key, so settlement counts its spend.
            return ValueTask.FromResult(new LimitDecision(new LimitLease(key, -1, 0, 0m, counted: false), null, default));
        }

        var tokens = 0L;
        var cost = 0m;
        if (key.NeedsEstimate)
        {
            var prompt = promptTokens ?? estimator.EstimatePrompt(request);
            var output = OutputReservation(request, model);
            tokens = prompt + output;
            cost = Pricing.WorstCase(prompt, output, WorstPrice(model));
        }

        return limiter.AcquireAsync(key, new LimitRequest(tokens, cost), cancellationToken);
    }

    /// <summary>The dearest price among the model's deployments now (any of them may serve the request).</summary>
    private PriceConfig? WorstPrice(CatalogModel model)
    {
        var now = time.GetUtcNow();
        PriceConfig? worst = model.PriceAt(now);
        foreach (var deployment in model.Deployments)
        {
            if (deployment.Config.Price is { } own && (worst is null || own.Input + own.Output > worst.Input + worst.Output))
            {
                worst = own;
            }
        }

        return worst;
    }

    /// <summary>Closes a lease with what the request really used.</summary>
    public ValueTask SettleAsync(LimitLease lease, Usage usage, decimal cost) =>
        lease.IsActive ? limiter.SettleAsync(lease, usage.TotalTokens, cost) : ValueTask.CompletedTask;
}
