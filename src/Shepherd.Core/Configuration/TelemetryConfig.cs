namespace Shepherd.Configuration;

/// <summary>Metrics (a Prometheus scrape endpoint) and optional trace export over OTLP.</summary>
/// <remarks>
/// The scrape endpoint is unauthenticated, as Prometheus expects: keep it off the public network (bind the gateway
/// to a private interface, or block the path at the reverse proxy). It never shows a key, a prompt or an answer.
/// </remarks>
public sealed record TelemetryConfig
{
    public const string Grpc = "grpc";
    public const string HttpProtobuf = "http/protobuf";

    /// <summary>Serve metrics in the Prometheus text format at <see cref="MetricsPath"/>.</summary>
    public bool Metrics { get; init; } = true;

    /// <summary>Where Prometheus scrapes.</summary>
    public string MetricsPath { get; init; } = "/metrics";

    /// <summary>Also label cost with the virtual key id (one series per key and model: only when keys are few).</summary>
    public bool MetricsKeyIds { get; init; }

    /// <summary>Where traces go over OTLP (e.g. <c>http://collector:4317</c>). None: nothing listens and spans cost nothing.</summary>
    public string? OtlpEndpoint { get; init; }

    /// <summary><c>grpc</c> (usually port 4317) or <c>http/protobuf</c> (usually port 4318, path <c>/v1/traces</c>).</summary>
    public string OtlpProtocol { get; init; } = Grpc;

    /// <summary>The <c>service.name</c> of exported traces and of the metrics' <c>target_info</c>.</summary>
    public string ServiceName { get; init; } = "shepherd";

    /// <summary>The share of traces kept, 0 … 1 (a client's sampled <c>traceparent</c> decides for its own requests).</summary>
    public double SampleRatio { get; init; } = 1.0;

    /// <summary>Send the trace context (<c>traceparent</c>) to upstream providers. Off by default: they are third parties.</summary>
    public bool Propagate { get; init; }
}

/// <summary>The rules of the <c>telemetry</c> section.</summary>
internal static class TelemetryConfigValidator
{
    private static readonly string[] ReservedPrefixes = ["/v1", "/admin", "/health"];

    public static void Validate(TelemetryConfig telemetry, List<ConfigProblem> problems)
    {
        var path = telemetry.MetricsPath;
        if (string.IsNullOrEmpty(path) || path[0] != '/' || path.Length == 1 || path.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c is '?' or '#' or '{' or '}' or '*'))
        {
            problems.Add(new ConfigProblem("telemetry.metrics_path", $"'{path}' is not a path such as /metrics"));
        }
        else if (ReservedPrefixes.Any(prefix => path.Equals(prefix, StringComparison.OrdinalIgnoreCase) || path.StartsWith(prefix + "/", StringComparison.OrdinalIgnoreCase)))
        {
            problems.Add(new ConfigProblem("telemetry.metrics_path", $"'{path}' would shadow the gateway's own endpoints (/v1, /admin, /health)"));
        }

        if (telemetry.OtlpEndpoint is { } endpoint &&
            (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || string.IsNullOrEmpty(uri.Host)))
        {
            problems.Add(new ConfigProblem("telemetry.otlp_endpoint", $"'{endpoint}' is not an http(s) URL such as http://collector:4317"));
        }

        if (telemetry.OtlpProtocol is not (TelemetryConfig.Grpc or TelemetryConfig.HttpProtobuf))
        {
            problems.Add(new ConfigProblem("telemetry.otlp_protocol", $"unknown protocol '{telemetry.OtlpProtocol}' (expected grpc or http/protobuf)"));
        }

        if (string.IsNullOrWhiteSpace(telemetry.ServiceName))
        {
            problems.Add(new ConfigProblem("telemetry.service_name", "must not be empty"));
        }

        if (telemetry.SampleRatio is < 0 or > 1 || double.IsNaN(telemetry.SampleRatio))
        {
            problems.Add(new ConfigProblem("telemetry.sample_ratio", "must be between 0 and 1"));
        }
    }
}
