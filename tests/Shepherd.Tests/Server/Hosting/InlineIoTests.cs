namespace Shepherd.Tests.Server.Hosting;

using System.Net;
using System.Text;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Shepherd.Configuration;
using Shepherd.Server.Hosting;
using Shepherd.Testing;

/// <summary><c>server.inline_io</c>: the client API on the socket threads, on by default, and switched off completely.</summary>
public sealed class InlineIoTests
{
    private const string Models = """
        providers:
          - { name: sim, type: simulated }
        models:
          - name: m
            deployments: [ { provider: sim } ]
        """;

    [Theory]
    [InlineData(true, null, "1")]
    [InlineData(true, "0", null)]
    [InlineData(true, "1", null)]
    [InlineData(false, null, null)]
    public void SocketsVariable_SetWhenOnUnlessTheEnvironmentAlreadySaysSo(bool inline, string? current, string? expected)
    {
        Assert.Equal(expected, InlineIo.SocketsSetting(new ServerConfig { InlineIo = inline }, current));
    }

    [Theory]
    [InlineData("", true)]
    [InlineData("server: { inline_io: false }", false)]
    public async Task Kestrel_SchedulesInlineAsConfigured_EveryKindOfRequestAnswered(string server, bool inline)
    {
        await using var gateway = await GatewayHost.StartAsync(Models + "\n" + server);

        Assert.Equal(inline, gateway.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value.UnsafePreferInlineScheduling);

        // The client API (inline) and the paths moved to the thread pool (admin, health, metrics) all answer.
        using var chat = await gateway.Client.PostAsync("/v1/chat/completions", new StringContent("""{"model":"m","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, chat.StatusCode);
        using var key = await gateway.Client.PostAsync("/admin/keys", new StringContent("""{"name":"inline"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, key.StatusCode);
        using var ready = await gateway.Client.GetAsync("/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using var metrics = await gateway.Client.GetAsync("/metrics");
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
    }
}
