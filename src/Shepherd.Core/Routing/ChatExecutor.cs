namespace Shepherd.Routing;

using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Health;
using Shepherd.Providers;

/// <summary>Which deployment served a request, and how many attempts it took.</summary>
public sealed record RouteInfo(CatalogModel Model, CatalogDeployment Deployment, int Attempts);

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

/// <summary>
/// Sends a request to a model's deployments. The one place that decides what a failure means for the request:
/// adapters only classify. (This version uses the first deployment; routing strategies, retries, breakers and
/// fallbacks plug in here.)
/// </summary>
public sealed class ChatExecutor
{
    private readonly ProviderStatusBoard _status;

    public ChatExecutor(ProviderStatusBoard status)
    {
        _status = status;
    }

    /// <param name="onRoute">Told the route of each attempt before it is sent, so a request the client abandons mid-call
    /// (the call then throws) is still logged with the provider it was waiting for.</param>
    public async ValueTask<Execution<ChatCompletion>> CompleteAsync(ChatRequest request, CatalogModel model, CancellationToken cancellationToken, Action<RouteInfo>? onRoute = null)
    {
        var deployment = model.Deployments[0];
        var call = CreateCall(request, model, deployment);
        var route = new RouteInfo(model, deployment, 1);
        onRoute?.Invoke(route);
        var outcome = await deployment.Provider.CompleteAsync(call, cancellationToken).ConfigureAwait(false);
        if (outcome.IsSuccess)
        {
            _status.RecordSuccess(deployment.Handle.Name, 200);
            return new Execution<ChatCompletion>(outcome.Value, null, route);
        }

        return Fail<ChatCompletion>(outcome.Failure!, deployment, route);
    }

    /// <param name="onRoute">Told the route of each attempt before it is sent, so a request the client abandons mid-call
    /// (the call then throws) is still logged with the provider it was waiting for.</param>
    public async ValueTask<Execution<ChatStream>> StreamAsync(ChatRequest request, CatalogModel model, CancellationToken cancellationToken, Action<RouteInfo>? onRoute = null)
    {
        var deployment = model.Deployments[0];
        var call = CreateCall(request, model, deployment);
        var route = new RouteInfo(model, deployment, 1);
        onRoute?.Invoke(route);
        var outcome = await deployment.Provider.StreamAsync(call, cancellationToken).ConfigureAwait(false);
        if (outcome.IsSuccess)
        {
            _status.RecordSuccess(deployment.Handle.Name, 200);
            return new Execution<ChatStream>(outcome.Value, null, route);
        }

        return Fail<ChatStream>(outcome.Failure!, deployment, route);
    }

    /// <summary>Records the end of a stream that failed after it began (the provider's health must know).</summary>
    public void RecordStreamFailure(RouteInfo route, UpstreamFailure failure) =>
        _status.RecordFailure(route.Deployment.Handle.Name, failure);

    private Execution<T> Fail<T>(UpstreamFailure failure, CatalogDeployment deployment, RouteInfo route)
        where T : class
    {
        // A caller fault says nothing about the upstream's health.
        if (failure.Class != FailureClass.CallerFault)
        {
            _status.RecordFailure(deployment.Handle.Name, failure);
        }

        return new Execution<T>(null, failure.ToClientError(), route, failure);
    }

    private static UpstreamCall CreateCall(ChatRequest request, CatalogModel model, CatalogDeployment deployment)
    {
        var (key, _) = deployment.Handle.Keys.Next();
        return new UpstreamCall(request, deployment.UpstreamModel, key, model.Config.MaxOutputTokens ?? 4096);
    }
}
