namespace Shepherd.Configuration;

/// <summary>The whole configuration file (<c>shepherd.yaml</c>). Keys are the snake_case forms of the property names.</summary>
/// <remarks>Every record here is bound by <see cref="ConfigBinder"/>, which refuses unknown keys, and checked by
/// <see cref="ConfigValidator"/>, which reports every problem with its key path.</remarks>
public sealed record ShepherdConfig
{
    public const string DefaultListen = "http://127.0.0.1:8080";

    /// <summary>Where the gateway listens. <c>--urls</c> overrides it.</summary>
    public string Listen { get; init; } = DefaultListen;

    /// <summary>The key that may call everything. Empty: a development key is generated at start-up.</summary>
    public string? MasterKey { get; init; }

    public List<ProviderConfig> Providers { get; init; } = [];

    public List<ModelConfig> Models { get; init; } = [];

    /// <summary>Virtual models resolved per request by ordered rules (see <see cref="RouterConfig"/>).</summary>
    public List<RouterConfig> Routers { get; init; } = [];

    public ServerConfig Server { get; init; } = new();

    public LoggingConfig Logging { get; init; } = new();

    /// <summary>Where keys, spend and usage are stored: <c>sqlite:PATH</c> (the embedded default) or PostgreSQL
    /// (<c>postgres://user:password@host:port/db</c> or an Npgsql connection string) for several instances.</summary>
    public string Storage { get; init; } = DefaultStorage;

    public LimitsConfig Limits { get; init; } = new();

    /// <summary>Usage records: one per request, written behind the request path.</summary>
    public UsageConfig Usage { get; init; } = new();

    /// <summary>Retries, breakers, retry budget and health probes: how the executor handles upstream failures.</summary>
    public RoutingConfig Routing { get; init; } = new();

    /// <summary>Metrics for Prometheus and optional OTLP trace export (see <see cref="TelemetryConfig"/>).</summary>
    public TelemetryConfig Telemetry { get; init; } = new();

    /// <summary>State shared by several instances (Redis), or in memory for one (see <see cref="StateConfig"/>).</summary>
    public StateConfig State { get; init; } = new();

    /// <summary>Signed webhooks processed by models: sources, rules, workers and retries (see <see cref="WebhooksConfig"/>).</summary>
    public WebhooksConfig Webhooks { get; init; } = new();

    public const string DefaultStorage = "sqlite:./shepherd.db";
}

/// <summary>Usage records: one per client request, queued in memory and written in batches; spilled to a local file when the store cannot keep up.</summary>
public sealed record UsageConfig
{
    public bool Enabled { get; init; } = true;

    /// <summary>Days raw records are kept; daily rollups are kept for ever. 0 keeps raw records for ever.</summary>
    public int RetentionDays { get; init; } = 30;

    /// <summary>Records waiting in memory at most; beyond it, they go straight to the spill file.</summary>
    public int QueueCapacity { get; init; } = 100_000;

    /// <summary>Records per insert transaction at most.</summary>
    public int BatchSize { get; init; } = 1_000;

    /// <summary>How long the writer lets a batch fill at most, and how often it looks for work when idle (spill replay, retention).</summary>
    public int FlushIntervalMs { get; init; } = 200;

    /// <summary>A batch write that takes longer fails over to the spill file.</summary>
    public int WriteTimeoutMs { get; init; } = 5_000;

    /// <summary>The spill file (JSON lines). Default: <c>usage-spill.jsonl</c> beside the database.</summary>
    public string? SpillPath { get; init; }
}

/// <summary>How virtual-key limits and budgets count.</summary>
public sealed record LimitsConfig
{
    /// <summary>Output tokens reserved (TPM and worst-case cost) for a request that sets no max_tokens, capped by the model's max_output_tokens.</summary>
    public int ReserveOutputTokens { get; init; } = 4096;

    /// <summary>Time zone of the daily and monthly budget windows (IANA id, e.g. Europe/Berlin).</summary>
    public string TimeZone { get; init; } = "UTC";
}

/// <summary>HTTP front-end settings.</summary>
public sealed record ServerConfig
{
    /// <summary>Largest accepted request body (413 above it).</summary>
    public long MaxBodyBytes { get; init; } = 10 * 1024 * 1024;

    /// <summary>How long a graceful shutdown waits for in-flight requests and streams.</summary>
    public int DrainTimeoutS { get; init; } = 30;

    /// <summary>Client IPs whose <c>X-Forwarded-For</c> is trusted (CIDRs).</summary>
    public List<string> TrustedProxies { get; init; } = [];

    /// <summary>
    /// Run the client API on the socket threads instead of handing every I/O completion to the thread pool (Kestrel's
    /// inline scheduling and .NET's inline socket completions): one thread hand-off less per I/O step. Safe because
    /// that path never blocks; every other path (admin, webhooks, health, metrics) moves to the thread pool first.
    /// </summary>
    public bool InlineIo { get; init; } = true;
}

public sealed record LoggingConfig
{
    /// <summary><c>trace</c>, <c>debug</c>, <c>information</c>, <c>warning</c>, <c>error</c>.</summary>
    public string Level { get; init; } = "information";

    /// <summary>Log one line per request (request id, model, provider, status, latency, tokens).</summary>
    public bool Requests { get; init; } = true;

    /// <summary>Also log request and response bodies (debug aid; may contain user data, never keys).</summary>
    public bool Bodies { get; init; }

    /// <summary><c>text</c> or <c>json</c>.</summary>
    public string Format { get; init; } = "text";
}

/// <summary>One upstream: a provider type, where it is, and the keys to call it with.</summary>
public sealed record ProviderConfig
{
    public string Name { get; init; } = "";

    /// <summary><c>openai</c> (any OpenAI-compatible server), <c>anthropic</c>, <c>gemini</c> or <c>simulated</c>.</summary>
    public string Type { get; init; } = "";

    public string? BaseUrl { get; init; }

    public List<string> ApiKeys { get; init; } = [];

    public TimeoutsConfig Timeouts { get; init; } = new();

    public ConnectionsConfig Connections { get; init; } = new();

    /// <summary>Extra headers sent upstream with every request (e.g. <c>OpenAI-Organization</c>).</summary>
    public Dictionary<string, string> Headers { get; init; } = [];

    /// <summary>OpenAI-compatible only: how to send <c>developer</c> messages: <c>keep</c> or <c>system</c>.
    /// Default: <c>keep</c> for api.openai.com, <c>system</c> for every other server (DeepSeek, vLLM, Ollama reject it).</summary>
    public string? DeveloperRole { get; init; }

    /// <summary>Anthropic only: the <c>anthropic-version</c> header.</summary>
    public string AnthropicVersion { get; init; } = "2023-06-01";

    /// <summary>Settings of the <c>simulated</c> provider.</summary>
    public SimulatedConfig? Simulated { get; init; }
}

public sealed record TimeoutsConfig
{
    public int ConnectMs { get; init; } = 5_000;

    /// <summary>From sending the request to the first byte of the answer (headers, then the first stream event).</summary>
    public int FirstByteMs { get; init; } = 60_000;

    /// <summary>Longest silence inside a response body or stream.</summary>
    public int IdleMs { get; init; } = 120_000;
}

/// <summary>The pooled <c>SocketsHttpHandler</c> of a provider.</summary>
public sealed record ConnectionsConfig
{
    /// <summary>Connections per upstream server (0 = unlimited).</summary>
    public int MaxPerServer { get; init; }

    /// <summary>Recycle a connection after this long, so DNS changes are picked up.</summary>
    public int LifetimeS { get; init; } = 300;

    /// <summary>Close a connection idle this long.</summary>
    public int IdleTimeoutS { get; init; } = 90;

    /// <summary>Allow HTTP/2 to the upstream (negotiated over TLS).</summary>
    public bool Http2 { get; init; } = true;
}

/// <summary>Behaviour of the simulated provider, for demos, load tests and offline development.</summary>
public sealed record SimulatedConfig
{
    /// <summary>Delay before the first token.</summary>
    public int TimeToFirstTokenMs { get; init; } = 0;

    /// <summary>Output speed; 0 emits everything at once.</summary>
    public double TokensPerSecond { get; init; } = 0;

    /// <summary>How many output tokens an answer has when the request sets no limit.</summary>
    public int ResponseTokens { get; init; } = 24;

    /// <summary>Report this many prompt tokens instead of counting (fixed usage, for exact accounting tests).</summary>
    public int? PromptTokens { get; init; }

    /// <summary>Report this many completion tokens (and emit that many words) regardless of the request.</summary>
    public int? CompletionTokens { get; init; }
}

/// <summary>A model clients can ask for, and the deployments that serve it.</summary>
public sealed record ModelConfig
{
    public string Name { get; init; } = "";

    /// <summary>Other names that resolve to this model (case-insensitive).</summary>
    public List<string> Aliases { get; init; } = [];

    public int? ContextWindow { get; init; }

    public int? MaxOutputTokens { get; init; }

    public PriceConfig? Price { get; init; }

    /// <summary>Scheduled or past prices, each with its <c>effective_from</c>; the latest one in effect wins over <see cref="Price"/>.</summary>
    public List<PriceConfig> PriceHistory { get; init; } = [];

    /// <summary>Shown as <c>owned_by</c> in <c>/v1/models</c>; defaults to the first deployment's provider type.</summary>
    public string? OwnedBy { get; init; }

    public List<DeploymentConfig> Deployments { get; init; } = [];

    /// <summary>How a deployment is picked: <c>priority</c> (default), <c>least-busy</c>, <c>latency</c> or <c>cost</c>.</summary>
    public string Strategy { get; init; } = "priority";

    /// <summary>Models tried, in order, when every deployment of this one failed or is unavailable.</summary>
    public List<string> Fallbacks { get; init; } = [];

    /// <summary>Opt-in: start a second attempt on another deployment when the first is slow to its first byte.</summary>
    public HedgingConfig? Hedging { get; init; }

    /// <summary>What to do with a prompt that does not fit <see cref="ContextWindow"/> (see <see cref="ContextConfig"/>).</summary>
    public ContextConfig? Context { get; init; }
}

public sealed record DeploymentConfig
{
    /// <summary>The name of a configured provider.</summary>
    public string Provider { get; init; } = "";

    /// <summary>The model name the upstream knows. Defaults to the model's own name.</summary>
    public string? Model { get; init; }

    /// <summary>Share of traffic within its priority tier (priority strategy).</summary>
    public int Weight { get; init; } = 1;

    /// <summary>Lower numbers are tried first (priority strategy); equal numbers form a tier.</summary>
    public int Priority { get; init; }

    /// <summary>Requests in flight to this deployment at once (none: unlimited).</summary>
    public int? MaxConcurrency { get; init; }

    /// <summary>Requests that may wait for a slot when <see cref="MaxConcurrency"/> is reached; beyond it, the request moves on at once.</summary>
    public int QueueSize { get; init; }

    /// <summary>Longest wait for a slot before the request moves on.</summary>
    public int QueueTimeoutMs { get; init; } = 5_000;

    /// <summary>The upstream's own requests-per-minute limit for this deployment (stay under it rather than collect 429s).</summary>
    public int? Rpm { get; init; }

    /// <summary>The upstream's own tokens-per-minute limit for this deployment.</summary>
    public int? Tpm { get; init; }

    /// <summary>This deployment's price, when it differs from the model's (cost strategy and accounting).</summary>
    public PriceConfig? Price { get; init; }
}

/// <summary>Hedged requests: a second attempt races the first when the first is slow.</summary>
public sealed record HedgingConfig
{
    /// <summary>Wait this long for a first byte before hedging; 0 uses the deployment's observed p95 time to first token.</summary>
    public int DelayMs { get; init; }

    /// <summary>Attempts racing at most (the first included).</summary>
    public int MaxAttempts { get; init; } = 2;
}

/// <summary>Failure handling shared by every model.</summary>
public sealed record RoutingConfig
{
    /// <summary>Upstream attempts per request at most (the first included), across deployments, keys and fallbacks.</summary>
    public int MaxAttempts { get; init; } = 4;

    /// <summary>Time a request may take until it is decided (attempts in flight, backoff, fallbacks) before it fails with 504; for a stream: until its first content.</summary>
    public int DeadlineMs { get; init; } = 120_000;

    /// <summary>Backoff before retrying a deployment already tried: exponential from this base, full jitter.</summary>
    public int BackoffBaseMs { get; init; } = 100;

    public int BackoffMaxMs { get; init; } = 10_000;

    public RetryBudgetConfig RetryBudget { get; init; } = new();

    public BreakerConfig Breaker { get; init; } = new();

    /// <summary>How often keys taken out (bad credentials) are probed to re-admit them; 0 disables probing.</summary>
    public int HealthProbeIntervalS { get; init; } = 30;
}

/// <summary>Retries may add at most <see cref="Ratio"/> extra upstream load (plus a small floor) over a sliding window.</summary>
public sealed record RetryBudgetConfig
{
    public double Ratio { get; init; } = 0.2;

    public int WindowS { get; init; } = 10;

    /// <summary>Retries always allowed per second, so a quiet gateway can still retry.</summary>
    public int MinPerSecond { get; init; } = 3;
}

/// <summary>The circuit breaker of every deployment and upstream key.</summary>
public sealed record BreakerConfig
{
    /// <summary>Open after this many failures in a row.</summary>
    public int ConsecutiveFailures { get; init; } = 5;

    /// <summary>Or open when this share of requests failed within the window (with at least <see cref="MinRequests"/>).</summary>
    public double FailureRate { get; init; } = 0.5;

    public int MinRequests { get; init; } = 20;

    public int WindowS { get; init; } = 30;

    /// <summary>Stay open this long, then let one probe through (half-open).</summary>
    public int CooldownS { get; init; } = 15;
}

/// <summary>USD per 1M tokens.</summary>
public sealed record PriceConfig
{
    /// <summary>From when (UTC date or date-time) this price applies; none: always (until a later dated price).</summary>
    public string? EffectiveFrom { get; init; }

    public decimal Input { get; init; }

    public decimal Output { get; init; }

    public decimal? CachedInput { get; init; }

    public decimal? CacheWrite { get; init; }

    public decimal? Reasoning { get; init; }
}
