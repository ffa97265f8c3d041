namespace Shepherd.Tests.Server.Endpoints;

using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text.Json;
using OpenAI;
using OpenAI.Models;
using Shepherd.Testing;

public sealed class ModelsEndpointsTests : IAsyncLifetime
{
    private GatewayHost _gateway = null!;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayHost.StartAsync("""
            providers:
              - name: sim
                type: simulated
            models:
              - name: demo-fast
                aliases: [ fast, Quick ]
                context_window: 128000
                max_output_tokens: 4096
                owned_by: shepherd
                deployments: [ { provider: sim } ]
              - name: org/model-x
                deployments: [ { provider: sim, model: x } ]
            """);
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    private static void AssertOpenAIModel(JsonElement model, string id, string ownedBy)
    {
        Assert.Equal(id, model.GetProperty("id").GetString());
        Assert.Equal("model", model.GetProperty("object").GetString());
        Assert.Equal(JsonValueKind.Number, model.GetProperty("created").ValueKind);
        Assert.True(model.GetProperty("created").GetInt64() > 1_600_000_000);
        Assert.Equal(ownedBy, model.GetProperty("owned_by").GetString());
    }

    [Fact]
    public async Task List_OpenAIListFormatInConfigOrder()
    {
        var response = await _gateway.Client.GetAsync("/v1/models");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("list", body.RootElement.GetProperty("object").GetString());
        var data = body.RootElement.GetProperty("data");
        Assert.Equal(2, data.GetArrayLength());
        AssertOpenAIModel(data[0], "demo-fast", "shepherd");
        AssertOpenAIModel(data[1], "org/model-x", "simulated");
    }

    [Theory]
    [InlineData("demo-fast", "demo-fast")]
    [InlineData("fast", "demo-fast")]
    [InlineData("QUICK", "demo-fast")]
    [InlineData("org/model-x", "org/model-x")]
    public async Task Get_NameOrAlias_ResolvesToTheModel(string asked, string id)
    {
        var response = await _gateway.Client.GetAsync($"/v1/models/{asked}");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        AssertOpenAIModel(body.RootElement, id, id == "demo-fast" ? "shepherd" : "simulated");
    }

    [Fact]
    public async Task Get_Unknown_404ModelNotFound()
    {
        var response = await _gateway.Client.GetAsync("/v1/models/gpt-99");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var error = body.RootElement.GetProperty("error");
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("gpt-99", error.GetProperty("message").GetString()!, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/v1/models")]
    [InlineData("/v1/models/demo-fast")]
    public async Task WithoutKey_401(string path)
    {
        using var anonymous = _gateway.CreateClient(null);

        var response = await anonymous.GetAsync(path);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Fact]
    public async Task OpenAISdk_ListsAndGetsModels()
    {
        var client = new OpenAIModelClient(new ApiKeyCredential(GatewayHost.TestMasterKey), new OpenAIClientOptions
        {
            Endpoint = _gateway.OpenAIEndpoint,
            RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        });

        var models = (await client.GetModelsAsync()).Value;
        var fast = (await client.GetModelAsync("fast")).Value;
        var missing = await Assert.ThrowsAsync<ClientResultException>(() => client.GetModelAsync("gpt-99"));

        Assert.Equal(["demo-fast", "org/model-x"], models.Select(m => m.Id));
        Assert.Equal("demo-fast", fast.Id);
        Assert.Equal("shepherd", fast.OwnedBy);
        Assert.True(fast.CreatedAt > DateTimeOffset.UnixEpoch);
        Assert.Equal(404, missing.Status);
    }
}
