namespace Shepherd.Tests.Server.Hosting;

using System.Net;
using System.Text;
using Shepherd.Testing;

/// <summary>A graceful stop (SIGTERM, a rolling deploy) must let streams in flight finish.</summary>
public sealed class GracefulShutdownTests
{
    [Fact]
    public async Task StopAsync_DuringSlowStream_StreamCompletesWithDone()
    {
        await using var gateway = await GatewayHost.StartAsync("""
            providers:
              - name: slow
                type: simulated
                simulated: { time_to_first_token_ms: 50, tokens_per_second: 25, response_tokens: 25 }
            models:
              - name: slow-model
                deployments: [ { provider: slow } ]
            server: { drain_timeout_s: 30 }
            """);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"model":"slow-model","stream":true,"messages":[{"role":"user","content":"a long answer please"}]}""", Encoding.UTF8, "application/json"),
        };

        using var response = await gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await using var body = await response.Content.ReadAsStreamAsync();
        using var reader = new StreamReader(body, Encoding.UTF8);
        var received = new StringBuilder();

        // Read until the first token has arrived, so the stop really happens mid-stream.
        while (Sse.Content(Sse.DataEvents(received.ToString())).Length == 0)
        {
            var line = await reader.ReadLineAsync();
            Assert.NotNull(line);
            received.Append(line).Append('\n');
        }

        using var stopTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var stopping = gateway.StopAsync(stopTimeout.Token);
        received.Append(await reader.ReadToEndAsync());
        await stopping;

        var events = Sse.DataEvents(received.ToString());
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(25, Sse.Content(events).Split(' ').Length);
        Assert.Contains("\"finish_reason\":\"stop\"", received.ToString(), StringComparison.Ordinal);
        Assert.False(stopTimeout.IsCancellationRequested);
    }

    [Fact]
    public async Task StopAsync_NewRequestsRefusedAfterStop()
    {
        await using var gateway = await GatewayHost.StartAsync("""
            providers:
              - name: sim
                type: simulated
            models:
              - name: sim-model
                deployments: [ { provider: sim } ]
            """);
        Assert.Equal(HttpStatusCode.OK, (await gateway.Client.GetAsync("/health")).StatusCode);

        await gateway.StopAsync();

        using var fresh = gateway.CreateClient(GatewayHost.TestMasterKey);
        await Assert.ThrowsAsync<HttpRequestException>(() => fresh.GetAsync("/health"));
    }
}
