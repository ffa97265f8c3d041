namespace Shepherd.Tests.Server.Admin;

using System.Net;
using System.Text.Json.Nodes;
using Shepherd.Testing;

/// <summary><c>POST /admin/debug/gc</c>: what bench/Shepherd.LoadTest reads to measure memory per held stream.</summary>
public sealed class DebugGcEndpointTests
{
    private const string Yaml = """
        providers: [ { name: sim, type: simulated } ]
        models: [ { name: m, deployments: [ { provider: sim } ] } ]
        """;

    [Fact]
    public async Task Post_MasterKey_ReportsMemoryAfterACollection()
    {
        await using var gateway = await GatewayHost.StartAsync(Yaml);
        using var client = gateway.CreateClient(GatewayHost.TestMasterKey);

        using var response = await client.PostAsync("/admin/debug/gc", null);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        foreach (var field in new[] { "managed_bytes", "working_set_bytes", "private_bytes", "gc_committed_bytes", "threads", "allocated_bytes", "jit_methods" })
        {
            Assert.True(json[field]!.GetValue<long>() > 0, field);
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("sk-not-the-master-key")]
    public async Task Post_WithoutTheMasterKey_Refused(string? key)
    {
        await using var gateway = await GatewayHost.StartAsync(Yaml);
        using var client = gateway.CreateClient(key);

        using var response = await client.PostAsync("/admin/debug/gc", null);

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.NotNull(JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]);
    }
}
