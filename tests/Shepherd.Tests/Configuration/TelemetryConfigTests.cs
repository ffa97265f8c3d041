namespace Shepherd.Tests.Configuration;

using OpenTelemetry.Exporter;
using Shepherd.Server.Telemetry;
using static Shepherd.Tests.Configuration.ConfigTestHelpers;

/// <summary>The <c>telemetry</c> section: defaults, every rule with its exact "path: message" line, the OTLP endpoint.</summary>
public sealed class TelemetryConfigTests
{
    [Fact]
    public void Load_NoTelemetrySection_MetricsOnTracingOff()
    {
        var telemetry = AssertValid(Minimal).Telemetry;
        Assert.True(telemetry.Metrics);
        Assert.Equal("/metrics", telemetry.MetricsPath);
        Assert.False(telemetry.MetricsKeyIds);
        Assert.Null(telemetry.OtlpEndpoint);
        Assert.Equal("grpc", telemetry.OtlpProtocol);
        Assert.Equal("shepherd", telemetry.ServiceName);
        Assert.Equal(1.0, telemetry.SampleRatio);
        Assert.False(telemetry.Propagate);
    }

    [Theory]
    [InlineData("telemetry: { metrics_path: metrics }", "telemetry.metrics_path: 'metrics' is not a path such as /metrics")]
    [InlineData("telemetry: { metrics_path: / }", "telemetry.metrics_path: '/' is not a path such as /metrics")]
    [InlineData("telemetry: { metrics_path: \"/metrics?x=1\" }", "telemetry.metrics_path: '/metrics?x=1' is not a path such as /metrics")]
    [InlineData("telemetry: { metrics_path: /v1/metrics }", "telemetry.metrics_path: '/v1/metrics' would shadow the gateway's own endpoints (/v1, /admin, /health)")]
    [InlineData("telemetry: { metrics_path: /Health }", "telemetry.metrics_path: '/Health' would shadow the gateway's own endpoints (/v1, /admin, /health)")]
    [InlineData("telemetry: { otlp_endpoint: collector:4317 }", "telemetry.otlp_endpoint: 'collector:4317' is not an http(s) URL such as http://collector:4317")]
    [InlineData("telemetry: { otlp_endpoint: \"ftp://collector\" }", "telemetry.otlp_endpoint: 'ftp://collector' is not an http(s) URL such as http://collector:4317")]
    [InlineData("telemetry: { otlp_protocol: http }", "telemetry.otlp_protocol: unknown protocol 'http' (expected grpc or http/protobuf)")]
    [InlineData("telemetry: { service_name: \" \" }", "telemetry.service_name: must not be empty")]
    [InlineData("telemetry: { sample_ratio: 1.5 }", "telemetry.sample_ratio: must be between 0 and 1")]
    [InlineData("telemetry: { sample_ratio: -0.1 }", "telemetry.sample_ratio: must be between 0 and 1")]
    public void Validate_TelemetryRules_Reported(string line, string expected)
    {
        AssertErrors(Minimal + "\n" + line, expected);
    }

    [Theory]
    [InlineData("telemetry: { metrics: false }")]
    [InlineData("telemetry: { metrics_path: /internal/metrics, metrics_key_ids: true }")]
    [InlineData("telemetry: { metrics_path: /healthz }")]
    [InlineData("telemetry: { otlp_endpoint: \"https://otel.example.com:4318\", otlp_protocol: http/protobuf, sample_ratio: 0, propagate: true }")]
    [InlineData("telemetry: { otlp_endpoint: null, service_name: shepherd-eu }")]
    public void Validate_AcceptedTelemetrySettings_Valid(string line)
    {
        AssertValid(Minimal + "\n" + line);
    }

    [Theory]
    [InlineData("http://collector:4317", OtlpExportProtocol.Grpc, "http://collector:4317/")]
    [InlineData("http://collector:4318", OtlpExportProtocol.HttpProtobuf, "http://collector:4318/v1/traces")]
    [InlineData("http://collector:4318/custom/traces", OtlpExportProtocol.HttpProtobuf, "http://collector:4318/custom/traces")]
    public void OtlpEndpoint_HttpWithoutPath_GetsTheTracesPath(string configured, OtlpExportProtocol protocol, string expected)
    {
        Assert.Equal(expected, TelemetryHosting.OtlpEndpoint(configured, protocol).ToString());
    }
}
