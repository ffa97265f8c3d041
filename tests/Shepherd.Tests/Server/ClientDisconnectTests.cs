namespace Shepherd.Tests.Server;

using System.Net;
using System.Text;
using Shepherd.Testing;

/// <summary>A client that goes away must take the upstream request with it: nobody pays for an answer nobody reads.</summary>
public sealed class ClientDisconnectTests : IAsyncLifetime
{
    private FakeOpenAI _upstream = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _upstream = await FakeOpenAI.StartAsync();
        _gateway = await GatewayHost.StartAsync($$"""
            providers:
              - name: fake
                type: openai
                base_url: {{_upstream.BaseUrl}}
                api_keys: [ sk-upstream-secret-1 ]
                timeouts: { connect_ms: 2000, first_byte_ms: 60000, idle_ms: 60000 }
            models:
              - name: gpt-test
                deployments: [ { provider: fake, model: upstream-model } ]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private static HttpRequestMessage Chat(bool stream) => new(HttpMethod.Post, "/v1/chat/completions")
    {
        Content = new StringContent(
            $$"""{"model":"gpt-test","stream":{{(stream ? "true" : "false")}},"messages":[{"role":"user","content":"hi"}]}""",
            Encoding.UTF8,
            "application/json"),
    };

    private async Task WaitForUpstreamRequestAsync()
    {
        for (var i = 0; i < 500 && _upstream.Server.StartedCount == 0; i++)
        {
            await Task.Delay(20);
        }

        Assert.Equal(1, _upstream.Server.StartedCount);
    }

    [Fact]
    public async Task NonStreamed_ClientCancels_UpstreamRequestCancelled()
    {
        _upstream.Faults.Always(new Fault { DelayBeforeHeaders = TimeSpan.FromSeconds(60) });
        using var cancel = new CancellationTokenSource();
        using var request = Chat(stream: false);

        var pending = _gateway.Client.SendAsync(request, cancel.Token);
        await WaitForUpstreamRequestAsync();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        await _upstream.Server.WaitForCancellationsAsync();
        Assert.Equal(1, _upstream.Server.CancelledCount);
    }

    [Fact]
    public async Task Streamed_ClientDisposesAfterFirstChunk_UpstreamStreamCancelled()
    {
        _upstream.Faults.Always(new Fault { DelayBetweenEvents = TimeSpan.FromSeconds(2) });
        using var request = Chat(stream: true);

        using (var response = await _gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var body = await response.Content.ReadAsStreamAsync();
            var buffer = new byte[4096];
            var read = await body.ReadAsync(buffer);
            Assert.StartsWith("data: {", Encoding.UTF8.GetString(buffer, 0, read), StringComparison.Ordinal);
        }

        await _upstream.Server.WaitForCancellationsAsync();
        Assert.Equal(1, _upstream.Server.CancelledCount);
    }

    [Fact]
    public async Task Streamed_ClientCancelsWhileWaitingForFirstEvent_UpstreamStreamCancelled()
    {
        _upstream.Faults.Always(new Fault { DelayBeforeFirstEvent = TimeSpan.FromSeconds(60) });
        using var cancel = new CancellationTokenSource();
        using var request = Chat(stream: true);

        var pending = _gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        await WaitForUpstreamRequestAsync();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        await _upstream.Server.WaitForCancellationsAsync();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ClientDisconnect_RequestLineWith499AndNoErrorLogged(bool stream)
    {
        _upstream.Faults.Always(stream ? new Fault { DelayBeforeFirstEvent = TimeSpan.FromSeconds(60) } : new Fault { DelayBeforeHeaders = TimeSpan.FromSeconds(60) });
        using var cancel = new CancellationTokenSource();
        using var request = Chat(stream);
        request.Headers.Add("x-request-id", "disconnect-test-1");

        var pending = _gateway.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancel.Token);
        await WaitForUpstreamRequestAsync();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pending);
        await _upstream.Server.WaitForCancellationsAsync();

        string? line = null;
        for (var i = 0; i < 250 && line is null; i++)
        {
            line = _gateway.Logs.Lines.FirstOrDefault(l => l.Contains("disconnect-test-1 POST", StringComparison.Ordinal));
            await Task.Delay(20);
        }

        Assert.NotNull(line);
        Assert.Contains("disconnect-test-1 POST /v1/chat/completions 499 ", line, StringComparison.Ordinal);
        Assert.Contains("model=gpt-test", line, StringComparison.Ordinal);
        Assert.Contains("provider=fake", line, StringComparison.Ordinal);
        Assert.Contains("error=client_disconnected", line, StringComparison.Ordinal);
        Assert.DoesNotContain(_gateway.Logs.Lines, l => l.StartsWith("Error", StringComparison.Ordinal));
    }
}
