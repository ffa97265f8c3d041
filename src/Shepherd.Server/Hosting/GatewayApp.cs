namespace Shepherd.Server.Hosting;

using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Shepherd.Accounting;
using Shepherd.Configuration;
using Shepherd.Keys;
using Shepherd.Limits;
using Shepherd.Server.Admin;
using Shepherd.Health;
using Shepherd.Providers;
using Shepherd.Resilience;
using Shepherd.Routing;
using Shepherd.Security;
using Shepherd.Server.Auth;
using Shepherd.Server.Endpoints;
using Shepherd.Server.Http;
using Shepherd.Server.Logging;
using Shepherd.Server.Telemetry;

/// <summary>How to host the gateway: what the CLI and the tests vary.</summary>
public sealed record GatewayHostOptions
{
    /// <summary>Overrides <c>listen</c> (the CLI's <c>--urls</c>; tests use <c>http://127.0.0.1:0</c>).</summary>
    public string? Urls { get; init; }

    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Where the configuration came from, for the start-up log line.</summary>
    public string Source { get; init; } = "configuration";

    /// <summary>Extra logging set-up (tests capture log lines here).</summary>
    public Action<ILoggingBuilder>? ConfigureLogging { get; init; }

    /// <summary>Receives a generated development master key (the CLI prints it once).</summary>
    public Action<string>? OnGeneratedMasterKey { get; init; }

    /// <summary>Environment lookup for the master key (tests isolate it).</summary>
    public Func<string, string?> Environment { get; init; } = System.Environment.GetEnvironmentVariable;
}

/// <summary>Builds the gateway: services, Kestrel, middleware and endpoints.</summary>
public static class GatewayApp
{
    /// <summary>Builds the gateway and prepares its storage (migrations, keys loaded into memory) before it listens.</summary>
    public static async Task<WebApplication> BuildAsync(ShepherdConfig config, GatewayHostOptions? options = null, CancellationToken cancellationToken = default)
    {
        var app = Build(config, options);
        await app.Services.GetRequiredService<Storage.IStorageDatabase>().MigrateAsync(cancellationToken);
        await app.Services.GetRequiredService<KeyService>().LoadAsync(cancellationToken);
        await ScaleOutServices.StartSharedStateAsync(app.Services, cancellationToken);
        return app;
    }

    private static WebApplication Build(ShepherdConfig config, GatewayHostOptions? options)
    {
        options ??= new GatewayHostOptions();
        // No watching of appsettings*.json (Shepherd reads its own YAML): the host's default reloadOnChange watches the
        // content root — the working directory — recursively, which from `/` (systemd's default) meant one inotify
        // watch per directory of the whole file system (46,369 here) and ~100 MB more memory at start.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.UseUrls(options.Urls ?? config.Listen);
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = config.Server.MaxBodyBytes;
            Http.RequestHeadLimits.Apply(kestrel.Limits);
        });
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(config.Server.DrainTimeoutS));
        builder.Services.Configure<Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets.SocketTransportOptions>(
            sockets => sockets.UnsafePreferInlineScheduling = config.Server.InlineIo);

        ConfigureLogging(builder.Logging, config.Logging);
        options.ConfigureLogging?.Invoke(builder.Logging);

        var (masterKeyText, generated) = ResolveMasterKey(config, options.Environment);
        var time = options.TimeProvider;
        builder.Services.AddSingleton(config);
        builder.Services.AddSingleton(time);
        builder.Services.AddSingleton(new MasterKey(masterKeyText, generated));
        AddKeysAndLimits(builder.Services, config, time);
        ScaleOutServices.AddSharedState(builder.Services, config, time);
        builder.Services.AddSingleton(sp => config.Providers.ToDictionary(
            p => p.Name,
            p => new ProviderHandle(
                ProviderFactory.Create(p, time, config.Telemetry.Propagate),
                new UpstreamKeyRing(p.ApiKeys, p.Name, sp.GetRequiredService<IBreakerStore>()),
                TimeSpan.FromMilliseconds(p.Timeouts.ConnectMs + p.Timeouts.FirstByteMs)),
            StringComparer.OrdinalIgnoreCase) as IReadOnlyDictionary<string, ProviderHandle>);
        builder.Services.AddSingleton(sp => new ModelCatalog(config, sp.GetRequiredService<IReadOnlyDictionary<string, ProviderHandle>>(), time, sp.GetRequiredService<IBreakerStore>()));
        builder.Services.AddSingleton(sp => new Routing.Rules.VirtualModelRouter(config.Routers, sp.GetRequiredService<ModelCatalog>(), sp.GetRequiredService<TokenEstimator>(), time));
        builder.Services.AddSingleton(_ => new ProviderStatusBoard(config.Providers.Select(p => (p.Name, p.Type)), time));
        builder.Services.AddSingleton<ChatExecutor>();
        builder.Services.AddSingleton<KeyProber>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<KeyProber>());
        builder.Services.AddSingleton(new ClientAddress(config.Server.TrustedProxies.Select(KeyEntry.ParseNetwork).ToArray()));
        builder.Services.AddSingleton(sp => new UsageRecorder(
            sp.GetRequiredService<IUsageStore>(),
            config.Usage,
            config.Usage.SpillPath ?? ScaleOutServices.DefaultSpillPath(sp),
            time,
            sp.GetRequiredService<ILogger<UsageRecorder>>()));
        builder.Services.AddHostedService(sp => sp.GetRequiredService<UsageRecorder>());
        builder.Services.AddSingleton<IUsageSink>(sp => sp.GetRequiredService<UsageRecorder>());
        builder.Services.AddSingleton<GatewayServices>();
        TelemetryHosting.AddTelemetry(builder.Services, config);
        WebhooksHosting.AddWebhooks(builder.Services, config, masterKeyText);

        var app = builder.Build();
        var gateway = app.Services.GetRequiredService<GatewayServices>();
        var startup = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Shepherd");
        if (generated)
        {
            Log.GeneratedMasterKey(startup);
            options.OnGeneratedMasterKey?.Invoke(masterKeyText);
        }

        app.Lifetime.ApplicationStarted.Register(() =>
            Log.Started(startup, GatewayServices.Version, config.Models.Count, config.Providers.Count, options.Source));
        app.Lifetime.ApplicationStopped.Register(() =>
        {
            foreach (var handle in app.Services.GetRequiredService<IReadOnlyDictionary<string, ProviderHandle>>().Values)
            {
                (handle.Provider as IDisposable)?.Dispose();
            }
        });

        app.UseMiddleware<GatewayMiddleware>();
        app.UseStatusCodePages(async status =>
        {
            var context = status.HttpContext;
            if (!context.Response.HasStarted && context.Response.ContentLength is null or 0 && context.Response.ContentType is null)
            {
                await ErrorResponses.WriteAsync(context, ErrorResponses.ForStatus(context.Response.StatusCode, context));
            }
        });

        MapEndpoints(app, gateway);
        TelemetryHosting.Map(app, config);
        return app;
    }

    /// <summary>Keys (the store, in-memory registry), the limiter, admission and the spend ledger.</summary>
    private static void AddKeysAndLimits(IServiceCollection services, ShepherdConfig config, TimeProvider time)
    {
        ConfigValidator.TryFindTimeZone(config.Limits.TimeZone, out var zone);
        var calendar = new BudgetCalendar(zone);
        services.AddSingleton(calendar);
        ScaleOutServices.AddStorage(services, config);
        services.AddSingleton<SpendLedger>();
        services.AddHostedService(sp => sp.GetRequiredService<SpendLedger>());
        services.AddSingleton<KeyRegistry>();
        services.AddSingleton<ICallerAuthenticator>(sp => sp.GetRequiredService<KeyRegistry>());
        services.AddSingleton<KeyService>();
        services.AddSingleton(sp => new InMemoryLimiter(time, calendar, sp.GetRequiredService<SpendLedger>()));
        services.AddSingleton<ILimiter>(sp => sp.GetRequiredService<InMemoryLimiter>());
        services.AddSingleton(TokenEstimator.Default);
        services.AddSingleton(sp => new Admission(sp.GetRequiredService<ILimiter>(), sp.GetRequiredService<TokenEstimator>(), config.Limits.ReserveOutputTokens, time));
    }

    private static void MapEndpoints(WebApplication app, GatewayServices gateway)
    {
        var chat = new ChatCompletionsEndpoint(gateway);
        var models = new ModelsEndpoints(gateway);
        var health = new HealthEndpoints(gateway, app.Services.GetService<Shepherd.Webhooks.Health.WebhookQueueReport>());

        var v1 = app.MapGroup("/v1");
        v1.MapPost("/chat/completions", chat.HandleAsync).WithMetadata(chat); // marks chat requests for the middleware (span, in-flight)
        v1.MapGet("/models", models.ListAsync);
        v1.MapGet("/models/{**id}", (HttpContext context, string id) => models.GetAsync(context, id));

        var admin = new AdminKeysEndpoints(
            app.Services.GetRequiredService<KeyService>(),
            gateway.Authenticator,
            app.Services.GetRequiredService<TimeProvider>(),
            gateway.Options.MaxBodyBytes);
        var keys = app.MapGroup("/admin/keys");
        keys.MapPost("", admin.CreateAsync);
        keys.MapGet("", admin.ListAsync);
        keys.MapGet("/{id}", (HttpContext context, string id) => admin.GetAsync(context, id));
        keys.MapPatch("/{id}", (HttpContext context, string id) => admin.UpdateAsync(context, id));
        keys.MapDelete("/{id}", (HttpContext context, string id) => admin.RevokeAsync(context, id));
        keys.MapPost("/{id}/revoke", (HttpContext context, string id) => admin.RevokeAsync(context, id));
        keys.MapPost("/{id}/topup", (HttpContext context, string id) => admin.TopUpAsync(context, id));
        keys.MapGet("/{id}/usage", (HttpContext context, string id) => admin.UsageAsync(context, id));
        var usage = new UsageEndpoints(
            admin,
            app.Services.GetRequiredService<IUsageStore>(),
            app.Services.GetRequiredService<KeyRegistry>(),
            gateway.Catalog,
            app.Services.GetRequiredService<BudgetCalendar>(),
            gateway.Time);
        app.MapGet("/admin/usage", usage.ReportAsync);
        WebhooksHosting.Map(app, admin.AuthorizeAsync);
        app.MapGet("/admin/openapi.json", AdminOpenApi.WriteAsync);
        app.MapPost("/admin/debug/gc", async context =>
        {
            // For memory measurements (bench/Shepherd.LoadTest): a full compacting collection, then what is really held.
            // ?collect=false only reads the numbers (the bytes allocated so far, around a load run).
            if (!await admin.AuthorizeAsync(context))
            {
                return;
            }

            if (!string.Equals(context.Request.Query["collect"], "false", StringComparison.OrdinalIgnoreCase))
            {
                System.Runtime.GCSettings.LargeObjectHeapCompactionMode = System.Runtime.GCLargeObjectHeapCompactionMode.CompactOnce;
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                GC.WaitForPendingFinalizers();
                NativeHeap.Trim();
            }

            using var process = System.Diagnostics.Process.GetCurrentProcess();
            await ModelsEndpoints.WriteJsonAsync(context, w =>
            {
                w.WriteStartObject();
                w.WriteNumber("managed_bytes"u8, GC.GetTotalMemory(forceFullCollection: false));
                w.WriteNumber("working_set_bytes"u8, process.WorkingSet64);
                w.WriteNumber("private_bytes"u8, process.PrivateMemorySize64);
                w.WriteNumber("gc_committed_bytes"u8, GC.GetGCMemoryInfo().TotalCommittedBytes);
                w.WriteNumber("threads"u8, process.Threads.Count);
                w.WriteNumber("allocated_bytes"u8, GC.GetTotalAllocatedBytes(precise: false));
                w.WriteNumber("jit_methods"u8, System.Runtime.JitInfo.GetCompiledMethodCount());
                w.WriteEndObject();
            });
        });
        app.MapGet("/admin/routing", async context =>
        {
            if (!await admin.AuthorizeAsync(context))
            {
                return;
            }

            var now = gateway.Time.GetUtcNow();
            await ModelsEndpoints.WriteJsonAsync(context, w =>
            {
                w.WriteStartObject();
                w.WriteString("object"u8, "routing_state"u8);
                w.WriteStartArray("providers"u8);
                foreach (var handle in gateway.Providers.Values)
                {
                    w.WriteStartObject();
                    w.WriteString("name"u8, handle.Name);
                    RoutingStatus.WriteKeys(w, handle, now);
                    w.WriteEndObject();
                }

                w.WriteEndArray();
                RoutingStatus.WriteDeployments(w, gateway.Catalog, now);
                w.WriteEndObject();
            });
        });

        app.MapGet("/health", HealthEndpoints.LiveAsync);
        app.MapGet("/health/live", HealthEndpoints.LiveAsync);
        app.MapGet("/health/ready", health.ReadyAsync);
    }

    /// <summary>The master key from config or <c>SHEPHERD_MASTER_KEY</c>; otherwise a generated development key.</summary>
    public static (string Key, bool Generated) ResolveMasterKey(ShepherdConfig config, Func<string, string?> environment)
    {
        if (!string.IsNullOrWhiteSpace(config.MasterKey))
        {
            return (config.MasterKey.Trim(), false);
        }

        var fromEnvironment = environment(ConfigLoader.MasterKeyEnvironmentVariable);
        return !string.IsNullOrWhiteSpace(fromEnvironment)
            ? (fromEnvironment.Trim(), false)
            : (MasterKey.GenerateDevelopmentKey(), true);
    }

    /// <summary>The addresses Kestrel actually bound (resolves port 0).</summary>
    public static IReadOnlyList<string> BoundAddresses(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToArray() ?? [];

    private static void ConfigureLogging(ILoggingBuilder logging, LoggingConfig config)
    {
        logging.ClearProviders();
        var level = config.Level.ToLowerInvariant() switch
        {
            "trace" => LogLevel.Trace,
            "debug" => LogLevel.Debug,
            "warning" => LogLevel.Warning,
            "error" => LogLevel.Error,
            "critical" => LogLevel.Critical,
            "none" => LogLevel.None,
            _ => LogLevel.Information,
        };
        logging.SetMinimumLevel(level);

        // ASP.NET Core's own per-request logs duplicate ours.
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        // Its hosting category is switched off entirely: while it is enabled at any level, ASP.NET starts an Activity
        // and a logging scope for every request (0.8 KB allocated per request and an ExecutionContext change) that no
        // Shepherd log line uses. Traces do not need it: the request span reads the client's traceparent itself.
        logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
        if (config.Format == "json")
        {
            logging.AddJsonConsole(o => o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ");
        }
        else
        {
            logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                o.UseUtcTimestamp = true;
            });
        }
    }
}
