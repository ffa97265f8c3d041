namespace Shepherd.Server.Telemetry;

using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Shepherd.Accounting;
using Shepherd.Configuration;
using Shepherd.Routing;
using Shepherd.Server.Hosting;
using Shepherd.Telemetry;

/// <summary>
/// Wires the <c>telemetry</c> section: the <c>Shepherd</c> meter read by a Prometheus scrape endpoint, and, only when an
/// OTLP endpoint is configured, a tracer provider that samples and exports the <c>Shepherd</c> spans.
/// </summary>
internal static class TelemetryHosting
{
    public static void AddTelemetry(IServiceCollection services, ShepherdConfig config)
    {
        var telemetry = config.Telemetry;

        // Created here, not by the container, so the view below can tell this host's instruments from others'.
        var shepherd = new ShepherdMetrics(keyIds: telemetry.MetricsKeyIds);
        services.AddSingleton(_ => shepherd);
        services.AddSingleton<ShepherdTracing>();
        if (!telemetry.Metrics && telemetry.OtlpEndpoint is null)
        {
            return;
        }

        var otel = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(telemetry.ServiceName, serviceVersion: GatewayServices.Version));
        if (telemetry.Metrics)
        {
            otel.WithMetrics(metrics => metrics
                .AddMeter(ShepherdMetrics.MeterName)
                .AddPrometheusExporter(prometheus => prometheus.ScrapeEndpointPath = telemetry.MetricsPath)

                // OpenTelemetry listens to meters by name, so it would also read another gateway's "Shepherd" meter
                // in the same process (tests, embedding): only this host's instruments are kept.
                .AddView(instrument => shepherd.Owns(instrument) ? null : MetricStreamConfiguration.Drop));
        }

        // Without an endpoint no tracer provider exists, so nothing listens to the activity source: spans are never started.
        if (telemetry.OtlpEndpoint is { } endpoint)
        {
            otel.WithTracing(tracing => tracing
                .AddSource(ShepherdTracing.SourceName)
                .SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(telemetry.SampleRatio)))
                .AddOtlpExporter(otlp =>
                {
                    otlp.Protocol = telemetry.OtlpProtocol == TelemetryConfig.HttpProtobuf ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                    otlp.Endpoint = OtlpEndpoint(endpoint, otlp.Protocol);
                }));
        }
    }

    /// <summary>Publishes the observed instruments (breakers, usage recorder) and maps the scrape endpoint.</summary>
    public static void Map(WebApplication app, ShepherdConfig config)
    {
        var services = app.Services;
        var metrics = services.GetRequiredService<ShepherdMetrics>();
        metrics.ObserveRouting(
            services.GetRequiredService<ModelCatalog>(),
            services.GetRequiredService<IReadOnlyDictionary<string, ProviderHandle>>().Values,
            services.GetRequiredService<TimeProvider>());
        metrics.ObserveUsageSink(services.GetRequiredService<UsageRecorder>());
        if (config.Telemetry.Metrics)
        {
            app.MapPrometheusScrapingEndpoint(config.Telemetry.MetricsPath);
        }
    }

    /// <summary>
    /// The endpoint as the exporter wants it: over HTTP, a URL given in code is used as is, so a bare
    /// <c>http://collector:4318</c> gets the standard <c>/v1/traces</c> path.
    /// </summary>
    internal static Uri OtlpEndpoint(string endpoint, OtlpExportProtocol protocol)
    {
        var uri = new Uri(endpoint, UriKind.Absolute);
        return protocol == OtlpExportProtocol.HttpProtobuf && uri.AbsolutePath is "" or "/"
            ? new Uri(uri, "/v1/traces")
            : uri;
    }
}
