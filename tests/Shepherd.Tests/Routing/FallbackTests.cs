namespace Shepherd.Tests.Routing;

using Shepherd.Testing;

/// <summary>Fallback chains: configured, replaced per request, filtered by context window; caller faults never fall back.</summary>
public sealed class FallbackTests : IAsyncLifetime
{
    private FakeOpenAI _x = null!;
    private FakeOpenAI _y = null!;
    private FakeOpenAI _z = null!;
    private FakeOpenAI _small = null!;
    private FakeOpenAI _big = null!;
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _x = await FakeOpenAI.StartAsync();
        _y = await FakeOpenAI.StartAsync();
        _z = await FakeOpenAI.StartAsync();
        _small = await FakeOpenAI.StartAsync();
        _big = await FakeOpenAI.StartAsync();
        _y.Reply = "Y answers.";
        _z.Reply = "Z answers.";
        _big.Reply = "Big answers.";

        // Default routing (max_attempts 4, backoff 100 ms) on a fake clock the backoff helper moves.
        _gateway = await GatewayHost.StartAsync($"""
            routing: {"{"} health_probe_interval_s: 0 {"}"}
            providers:
            {RoutingKit.Provider("x", _x)}{RoutingKit.Provider("y", _y)}{RoutingKit.Provider("z", _z)}{RoutingKit.Provider("small", _small)}{RoutingKit.Provider("big", _big)}
            models:
              - name: model-x
                context_window: 8000
                fallbacks: [ model-small, model-y, model-big ]
                deployments:
                  - {"{"} provider: x, model: x-1 {"}"}
                  - {"{"} provider: x, model: x-2 {"}"}
              - name: model-y
                context_window: 8000
                deployments: [ {"{"} provider: y, model: up-y {"}"} ]
              - name: model-z
                deployments: [ {"{"} provider: z, model: up-z {"}"} ]
              - name: model-small
                context_window: 4000
                deployments: [ {"{"} provider: small, model: up-small {"}"} ]
              - name: model-big
                context_window: 128000
                deployments: [ {"{"} provider: big, model: up-big {"}"} ]
            """, Time);
    }

    private Microsoft.Extensions.Time.Testing.FakeTimeProvider Time { get; } = RoutingKit.Clock();

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        foreach (var fake in new[] { _x, _y, _z, _small, _big })
        {
            await fake.DisposeAsync();
        }
    }

    private Task<Answer> SendAsync(string model, bool stream = false, string? fallbacks = null) =>
        Time.AdvanceWhilePendingAsync(RoutingKit.SendAsync(_gateway, model, stream, fallbacks: fallbacks), TimeSpan.FromMilliseconds(50));

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task EveryDeploymentFails_FallbackModelServes_WithFallbackHeader(bool stream)
    {
        _x.Faults.Always(Fault.WithStatus(500));
        _small.Faults.Always(Fault.WithStatus(503));

        var answer = await SendAsync("model-x", stream);

        Assert.Equal(200, answer.Status);
        Assert.Equal("model-y", answer.Header("x-shepherd-model"));
        Assert.Equal("y", answer.Header("x-shepherd-provider"));
        Assert.Equal("y/up-y", answer.Deployment);
        Assert.Equal("model-x -> model-y", answer.Header("x-shepherd-fallback"));
        Assert.Equal("Y answers.", stream ? answer.StreamedContent : answer.MessageContent);
        Assert.Equal(_x.Server.StartedCount + _small.Server.StartedCount + 1, answer.Attempts);
        Assert.Equal(1, _y.Server.StartedCount);
        Assert.Equal(0, _big.Server.StartedCount);

        // Both deployments of model-x were tried before falling back.
        var models = _x.Server.Requests.Select(r => r.Json().RootElement.GetProperty("model").GetString()).ToHashSet();
        Assert.Equal(["x-1", "x-2"], models.Order());
    }

    [Fact]
    public async Task Healthy_NoFallbackHeader()
    {
        var answer = await SendAsync("model-x");

        Assert.Equal(200, answer.Status);
        Assert.Equal("model-x", answer.Header("x-shepherd-model"));
        Assert.Null(answer.Header("x-shepherd-fallback"));
        Assert.Equal(1, answer.Attempts);
    }

    [Fact]
    public async Task FallbacksHeader_ReplacesTheConfiguredChain()
    {
        _x.Faults.Always(Fault.WithStatus(500));

        var answer = await SendAsync("model-x", fallbacks: "model-z");

        Assert.Equal(200, answer.Status);
        Assert.Equal("model-x -> model-z", answer.Header("x-shepherd-fallback"));
        Assert.Equal("Z answers.", answer.MessageContent);
        Assert.Equal(0, _y.Server.StartedCount);
        Assert.Equal(0, _small.Server.StartedCount);
    }

    [Fact]
    public async Task FallbacksHeader_ModelWithoutFallbacks_GetsAChain()
    {
        _z.Faults.Always(Fault.WithStatus(502));

        var answer = await SendAsync("model-z", fallbacks: " model-y , model-big");

        Assert.Equal(200, answer.Status);
        Assert.Equal("model-z -> model-y", answer.Header("x-shepherd-fallback"));
    }

    [Fact]
    public async Task FallbacksHeader_UnknownModel_400AndNothingSent()
    {
        var answer = await SendAsync("model-x", fallbacks: "model-y, no-such-model");

        Assert.Equal(400, answer.Status);
        Assert.Equal("x-shepherd-fallbacks", answer.Error.GetProperty("param").GetString());
        Assert.Contains("no-such-model", answer.Error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, _x.Server.StartedCount + _y.Server.StartedCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ContextOverflow_FallsBackOnlyToALargerContextWindow(bool stream)
    {
        _x.Faults.Always(Fault.WithStatus(400, FakeOpenAI.Error(400, "This model's maximum context length is 8000 tokens.", "invalid_request_error", "context_length_exceeded")));

        var answer = await SendAsync("model-x", stream);

        // model-small (4000) and model-y (8000, not larger) are skipped; model-big (128000) serves.
        Assert.Equal(200, answer.Status);
        Assert.Equal("model-x -> model-big", answer.Header("x-shepherd-fallback"));
        Assert.Equal("Big answers.", stream ? answer.StreamedContent : answer.MessageContent);
        Assert.Equal(1, _x.Server.StartedCount); // the other deployment of the same model has the same window
        Assert.Equal(0, _small.Server.StartedCount);
        Assert.Equal(0, _y.Server.StartedCount);
        Assert.Equal(2, answer.Attempts);
    }

    [Fact]
    public async Task ContextOverflow_NoLargerModel_ClientGetsTheOverflowError()
    {
        _y.Faults.Always(Fault.WithStatus(400, FakeOpenAI.Error(400, "too long", "invalid_request_error", "context_length_exceeded")));

        var answer = await SendAsync("model-y", fallbacks: "model-small");

        Assert.Equal(400, answer.Status);
        Assert.Equal("context_length_exceeded", answer.Error.GetProperty("code").GetString());
        Assert.Equal(1, _y.Server.StartedCount);
        Assert.Equal(0, _small.Server.StartedCount);
    }

    [Fact]
    public async Task ContextOverflow_ThenATransientFailure_StillNeverTriesASmallerWindow()
    {
        _x.Faults.Always(Fault.WithStatus(400, FakeOpenAI.Error(400, "too long", "invalid_request_error", "context_length_exceeded")));
        _big.Faults.Always(Fault.WithStatus(500));

        var answer = await SendAsync("model-x", fallbacks: "model-big, model-small");

        Assert.Equal(502, answer.Status);
        Assert.Equal(0, _small.Server.StartedCount);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task CallerFault_ReturnedAsIs_NoRetryNoFallback(bool stream)
    {
        _x.Faults.Always(Fault.WithStatus(400, FakeOpenAI.Error(400, "Invalid value for 'temperature'.", "invalid_request_error", "invalid_value")));

        var answer = await SendAsync("model-x", stream);

        Assert.Equal(400, answer.Status);
        Assert.Equal("invalid_value", answer.Error.GetProperty("code").GetString());
        Assert.Contains("temperature", answer.Error.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal(1, _x.Server.StartedCount);
        Assert.Equal(0, _y.Server.StartedCount + _small.Server.StartedCount + _big.Server.StartedCount);
        Assert.Equal("1", answer.Header("x-shepherd-attempts"));
    }
}
