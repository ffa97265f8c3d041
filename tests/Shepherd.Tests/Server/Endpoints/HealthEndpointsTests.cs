namespace Shepherd.Tests.Server.Endpoints;

using System.Net;
using System.Text;
using System.Text.Json;
using Shepherd.Testing;

public sealed class HealthEndpointsTests : IAsyncLifetime
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
              - name: sim
                type: simulated
            models:
              - name: gpt-test
                deployments: [ { provider: fake, model: upstream-model } ]
              - name: sim-model
                deployments: [ { provider: sim } ]
            """);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _upstream.DisposeAsync();
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> ReadyAsync()
    {
        using var anonymous = _gateway.CreateClient(null);
        var response = await anonymous.GetAsync("/health/ready");
        using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return (response.StatusCode, document.RootElement.Clone());
    }

    private static JsonElement Provider(JsonElement ready, string name) =>
        ready.GetProperty("providers").EnumerateArray().Single(p => p.GetProperty("name").GetString() == name);

    private Task<HttpResponseMessage> ChatAsync(string model) =>
        _gateway.Client.PostAsync("/v1/chat/completions", new StringContent($$"""{"model":"{{model}}","messages":[{"role":"user","content":"hi"}]}""", Encoding.UTF8, "application/json"));

    [Theory]
    [InlineData("/health")]
    [InlineData("/health/live")]
    public async Task Live_NoKeyNeeded_Ok(string path)
    {
        using var anonymous = _gateway.CreateClient(null);

        var response = await anonymous.GetAsync(path);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        Assert.Equal("""{"status":"ok"}""", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Ready_BeforeAnyCall_ProvidersListedAsUnknown()
    {
        var (status, body) = await ReadyAsync();

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ready", body.GetProperty("status").GetString());
        Assert.Equal(2, body.GetProperty("models").GetInt32());
        Assert.Equal(["fake", "sim"], body.GetProperty("providers").EnumerateArray().Select(p => p.GetProperty("name").GetString()).Order());
        Assert.Equal("openai", Provider(body, "fake").GetProperty("type").GetString());
        Assert.Equal("unknown", Provider(body, "fake").GetProperty("state").GetString());
    }

    [Fact]
    public async Task Ready_AfterSuccess_ProviderOkWithLastStatus()
    {
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync("gpt-test")).StatusCode);

        var (_, body) = await ReadyAsync();

        var fake = Provider(body, "fake");
        Assert.Equal("ok", fake.GetProperty("state").GetString());
        Assert.Equal(200, fake.GetProperty("last_status").GetInt32());
        Assert.True(fake.TryGetProperty("last_success_at", out _));
        Assert.Equal(1, fake.GetProperty("requests").GetInt64());
        Assert.Equal("unknown", Provider(body, "sim").GetProperty("state").GetString());
    }

    [Fact]
    public async Task Ready_UpstreamFailing_ReportedInBodyButStill200()
    {
        _upstream.Faults.Always(Fault.WithStatus(503, FakeOpenAI.Error(503, "The engine is currently overloaded.")));
        Assert.Equal(HttpStatusCode.BadGateway, (await ChatAsync("gpt-test")).StatusCode);
        Assert.Equal(HttpStatusCode.BadGateway, (await ChatAsync("gpt-test")).StatusCode);

        var (status, body) = await ReadyAsync();

        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("ready", body.GetProperty("status").GetString());
        var fake = Provider(body, "fake");
        Assert.Equal("failing", fake.GetProperty("state").GetString());
        Assert.Equal(503, fake.GetProperty("last_status").GetInt32());
        Assert.Equal("Transient", fake.GetProperty("last_failure_class").GetString());
        Assert.Contains("overloaded", fake.GetProperty("last_error").GetString()!, StringComparison.Ordinal);
        Assert.Equal(2, fake.GetProperty("consecutive_failures").GetInt32());
        Assert.Equal(2, fake.GetProperty("failures").GetInt64());
    }

    [Fact]
    public async Task Ready_RecoveryAfterFailure_BackToOk()
    {
        _upstream.Faults.Then(Fault.WithStatus(500));
        await ChatAsync("gpt-test");
        Assert.Equal(HttpStatusCode.OK, (await ChatAsync("gpt-test")).StatusCode);

        var (_, body) = await ReadyAsync();

        var fake = Provider(body, "fake");
        Assert.Equal("ok", fake.GetProperty("state").GetString());
        Assert.Equal(0, fake.GetProperty("consecutive_failures").GetInt32());
        Assert.Equal(1, fake.GetProperty("failures").GetInt64());
    }

    [Fact]
    public async Task Ready_CallerFault_DoesNotMarkProviderFailing()
    {
        _upstream.Faults.Always(Fault.WithStatus(400, FakeOpenAI.Error(400, "bad request")));
        Assert.Equal(HttpStatusCode.BadRequest, (await ChatAsync("gpt-test")).StatusCode);

        var (_, body) = await ReadyAsync();

        Assert.NotEqual("failing", Provider(body, "fake").GetProperty("state").GetString());
    }
}
