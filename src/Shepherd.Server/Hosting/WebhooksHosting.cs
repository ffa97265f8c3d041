namespace Shepherd.Server.Hosting;

using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Shepherd.Configuration;
using Shepherd.Server.Admin;
using Shepherd.Server.Webhooks;
using Shepherd.Webhooks;
using Shepherd.Webhooks.Delivery;
using Shepherd.Webhooks.Health;
using Shepherd.Webhooks.Intake;
using Shepherd.Webhooks.Processing;
using Shepherd.Webhooks.Retention;
using Shepherd.Webhooks.Telemetry;

/// <summary>Wires the webhook pipeline into the gateway: services, the receiving endpoint and the admin API.</summary>
public static class WebhooksHosting
{
    /// <summary>Registers the pipeline (its parts exist even with no source configured: the endpoint then answers 404).</summary>
    /// <param name="services">The gateway's services.</param>
    /// <param name="config">The configuration.</param>
    /// <param name="masterKey">The key processing runs under for a source that names none.</param>
    public static void AddWebhooks(IServiceCollection services, ShepherdConfig config, string masterKey)
    {
        services.AddSingleton(new WebhookRuntime(config.Webhooks));
        services.AddSingleton(new WebhookCredentials(masterKey));

        // The job store (IWebhookJobStore, IWebhookEventQuery) is registered with the other stores, per storage kind
        // (ScaleOutServices.AddStorage): SQLite embedded, or PostgreSQL shared by every instance.

        services.AddSingleton<WebhookMetrics>();
        services.AddSingleton<LoopbackGateway>();
        services.AddSingleton(sp => new ResultDelivery(sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton(sp => new WebhookIntake(
            sp.GetRequiredService<IWebhookJobStore>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<WebhookIntake>>()));
        services.AddSingleton(sp => new WebhookProcessor(
            sp.GetRequiredService<WebhookRuntime>(),
            sp.GetRequiredService<IWebhookJobStore>(),
            sp.GetRequiredService<LoopbackGateway>(),
            sp.GetRequiredService<ResultDelivery>(),
            sp.GetRequiredService<WebhookMetrics>(),
            sp.GetRequiredService<WebhookCredentials>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<WebhookProcessor>>(),
            TimeSpan.FromMilliseconds(config.Routing.DeadlineMs) + TimeSpan.FromSeconds(30)));
        services.AddHostedService(sp => sp.GetRequiredService<WebhookProcessor>());
        services.AddSingleton(sp => new WebhookRetention(
            sp.GetRequiredService<IWebhookJobStore>(),
            config.Webhooks.RetentionDays,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<WebhookRetention>>()));
        services.AddHostedService(sp => sp.GetRequiredService<WebhookRetention>());
        services.AddSingleton<WebhookReceiver>();
        services.AddSingleton<WebhookQueueReport>();
    }

    /// <summary>Maps <c>POST /webhooks/{source}</c> and <c>/admin/webhooks</c>, and tells the workers where the gateway listens once it does.</summary>
    public static void Map(WebApplication app, Func<HttpContext, Task<bool>> authorize)
    {
        var services = app.Services;
        var processor = services.GetRequiredService<WebhookProcessor>();
        services.GetRequiredService<WebhookIntake>().OnStored(processor.Notify);
        app.Lifetime.ApplicationStarted.Register(() => services.GetRequiredService<LoopbackGateway>().SetAddresses(GatewayApp.BoundAddresses(app)));

        var endpoint = new WebhookEndpoint(services.GetRequiredService<WebhookReceiver>());
        app.MapPost("/webhooks/{source}", (HttpContext context, string source) => endpoint.HandleAsync(context, source));

        var admin = new AdminWebhooksEndpoints(
            services.GetRequiredService<IWebhookJobStore>(),
            services.GetRequiredService<IWebhookEventQuery>(),
            processor,
            services.GetRequiredService<TimeProvider>(),
            authorize);
        var group = app.MapGroup("/admin/webhooks");
        group.MapGet("", admin.ListAsync);
        group.MapGet("/dead", admin.DeadAsync);
        group.MapPost("/dead/replay", admin.ReplayDeadAsync);
        group.MapPost("/dead/purge", admin.PurgeDeadAsync);
        group.MapGet("/events/{id}", (HttpContext context, string id) => admin.ShowAsync(context, id));
        group.MapPost("/events/{id}/replay", (HttpContext context, string id) => admin.ReplayAsync(context, id));
    }
}
