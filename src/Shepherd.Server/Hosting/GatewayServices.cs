namespace Shepherd.Server.Hosting;

using System.Reflection;
using Microsoft.Extensions.Logging;
using Shepherd.Accounting;
using Shepherd.Configuration;
using Shepherd.Limits;
using Shepherd.Server.Http;
using Shepherd.Health;
using Shepherd.Routing;
using Shepherd.Routing.Context;
using Shepherd.Routing.Rules;
using Shepherd.Security;

/// <summary>The gateway's long-lived parts, resolved once at start-up and captured by the endpoints.</summary>
public sealed class GatewayServices(
    ShepherdConfig config,
    ModelCatalog catalog,
    ChatExecutor executor,
    ICallerAuthenticator authenticator,
    ProviderStatusBoard status,
    Admission admission,
    InMemoryLimiter limiter,
    TokenEstimator estimator,
    ClientAddress clientAddress,
    Storage.IStorageDatabase storage,
    IReadOnlyDictionary<string, ProviderHandle> providers,
    TimeProvider time,
    IUsageSink usageSink,
    ILoggerFactory loggers,
    VirtualModelRouter router,
    Storage.Redis.RedisState? sharedState = null)
{
    public static readonly string Version =
        typeof(GatewayServices).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    public ShepherdConfig Config { get; } = config;

    public ServerConfig Options => Config.Server;

    public ModelCatalog Catalog { get; } = catalog;

    public ChatExecutor Executor { get; } = executor;

    /// <summary>The virtual models (<c>routers</c>): names resolved per request by ordered rules.</summary>
    public VirtualModelRouter Router { get; } = router;

    /// <summary>Fits prompts to a model's context window as its <c>context</c> settings say.</summary>
    public ContextWindowManager Context { get; } = new(estimator);

    public ICallerAuthenticator Authenticator { get; } = authenticator;

    public ProviderStatusBoard Status { get; } = status;

    public Admission Admission { get; } = admission;

    /// <summary>The limiter, for the rate-limit headers of responses that reserved nothing.</summary>
    public InMemoryLimiter Limiter { get; } = limiter;

    public TokenEstimator Estimator { get; } = estimator;

    public ClientAddress ClientAddress { get; } = clientAddress;

    /// <summary>Every provider with its upstream keys, by name.</summary>
    public IReadOnlyDictionary<string, ProviderHandle> Providers { get; } = providers;

    public TimeProvider Time { get; } = time;

    /// <summary>Where each request's usage record goes (off the request path).</summary>
    public IUsageSink UsageSink { get; } = usageSink;

    public ILogger Logger { get; } = loggers.CreateLogger("Shepherd.Requests");

    public bool LogBodies => Config.Logging.Bodies;

    /// <summary>The database (SQLite or PostgreSQL), pinged by readiness.</summary>
    public Storage.IStorageDatabase Storage { get; } = storage;

    /// <summary>The shared state (Redis) when several instances act as one; null when state is in memory.</summary>
    public Storage.Redis.RedisState? SharedState { get; } = sharedState;
}
