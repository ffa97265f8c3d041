namespace Shepherd.Tests.Webhooks;

using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using Shepherd.Testing;
using Shepherd.Webhooks;
using static Shepherd.Tests.Webhooks.WebhookFixtures;

/// <summary><c>POST /webhooks/{source}</c>: signatures (rotation, prefix, timestamps), sizes, and what gets stored.</summary>
public sealed class WebhookReceivingTests
{
    private static async Task<JsonNode> BodyAsync(HttpResponseMessage response) => JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

    [Fact]
    public async Task Receive_ValidSignature_202AcceptedAndStoredBeforeTheAnswer()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());
        var body = Event("agent.completed", id: "evt-1");

        using var response = await SendAsync(gateway.Client, body);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        var json = await BodyAsync(response);
        Assert.Equal("accepted", json["status"]!.GetValue<string>());
        Assert.Equal("evt-1", json["id"]!.GetValue<string>());
        var stored = await gateway.EventAsync("evt-1");
        Assert.Equal("agent.completed", stored.EventType);
        Assert.Equal(body, Encoding.UTF8.GetString(stored.Payload.Span));
        Assert.Equal(WebhookJobStatus.Waiting, stored.Jobs.Single().Status);
    }

    [Fact]
    public async Task Receive_OldSecretDuringRotation_Accepted()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());

        using var response = await SendAsync(gateway.Client, Event("agent.completed", id: "evt-old"), OldSecret);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    [Fact]
    public async Task Receive_BareHexAndPrefixedSignature_BothAccepted()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());
        var bare = Event("agent.completed", id: "evt-bare");
        var prefixed = Event("agent.completed", id: "evt-prefixed");

        using var bareResponse = await PostAsync(gateway.Client, "twill", Encoding.UTF8.GetBytes(bare), ("x-twill-signature", Sign(bare)["sha256=".Length..]));
        using var prefixedResponse = await PostAsync(gateway.Client, "twill", Encoding.UTF8.GetBytes(prefixed), ("x-twill-signature", Sign(prefixed).ToUpperInvariant().Replace("SHA256=", "sha256=", StringComparison.Ordinal)));

        Assert.Equal(HttpStatusCode.Accepted, bareResponse.StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, prefixedResponse.StatusCode);
    }

    [Fact]
    public async Task Receive_RejectedSignatures_401AndNothingStored()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());
        var body = Event("agent.completed", id: "evt-bad");
        var bytes = Encoding.UTF8.GetBytes(body);
        var changed = (byte[])bytes.Clone();
        changed[^3] ^= 0x01; // one byte of the body, after signing

        var cases = new (string Name, byte[] Body, string? Signature)[]
        {
            ("wrong secret", bytes, Sign(body, "whsec-someone-else-0123456789")),
            ("missing header", bytes, null),
            ("empty header", bytes, ""),
            ("one byte changed", changed, Sign(body)),
            ("not hex", bytes, "sha256=" + new string('z', 64)),
            ("truncated", bytes, Sign(body)[..40]),
            ("other algorithm", bytes, "sha1=" + Sign(body)["sha256=".Length..]),
        };

        foreach (var (name, payload, signature) in cases)
        {
            using var response = await PostAsync(gateway.Client, "twill", payload, ("x-twill-signature", signature));
            Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{name}: {response.StatusCode}");
            var error = await BodyAsync(response);
            Assert.Equal("authentication_error", error["error"]!["type"]!.GetValue<string>());
        }

        Assert.Empty(await gateway.EventsAsync());
    }

    [Fact]
    public async Task Receive_SeveralSignaturesInTheHeader_AnyValidOneAccepted()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());
        var body = Event("agent.completed", id: "evt-two");

        using var response = await PostAsync(gateway.Client, "twill", Encoding.UTF8.GetBytes(body), ("x-twill-signature", $"{Sign(body, "whsec-retired-0123456789abcdef")}, {Sign(body, OldSecret)}"));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    [Fact]
    public async Task Receive_Timestamps_SignedFreshAcceptedStaleOrMissingOrUnsignedRefused()
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-03-01T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var gateway = await GatewayHost.StartAsync(Config(sourceExtra: "timestamp_header: x-twill-timestamp\ntolerance_s: 300"), time);
        var now = Now(time);
        var stale = (time.GetUtcNow().ToUnixTimeSeconds() - 301).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var future = (time.GetUtcNow().ToUnixTimeSeconds() + 301).ToString(System.Globalization.CultureInfo.InvariantCulture);

        async Task<HttpStatusCode> Send(string id, string? timestamp, string? signedTimestamp)
        {
            var body = Event("agent.completed", id: id);
            using var response = await PostAsync(gateway.Client, "twill", Encoding.UTF8.GetBytes(body), ("x-twill-signature", Sign(body, Secret, signedTimestamp)), ("x-twill-timestamp", timestamp));
            return response.StatusCode;
        }

        Assert.Equal(HttpStatusCode.Accepted, await Send("fresh", now, now));
        Assert.Equal(HttpStatusCode.Unauthorized, await Send("stale", stale, stale));
        Assert.Equal(HttpStatusCode.Unauthorized, await Send("future", future, future));
        Assert.Equal(HttpStatusCode.Unauthorized, await Send("missing", null, now));
        Assert.Equal(HttpStatusCode.Unauthorized, await Send("body-only-signature", now, null));
        Assert.Equal(HttpStatusCode.Unauthorized, await Send("swapped", now, stale));
        Assert.Equal(HttpStatusCode.Unauthorized, await Send("not-a-number", "yesterday", "yesterday"));

        Assert.Equal(["fresh"], (await gateway.EventsAsync()).Select(e => e.EventId));
    }

    [Fact]
    public async Task Receive_UnknownSource_404()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());
        var body = Event("agent.completed");

        using var response = await SendAsync(gateway.Client, body, source: "stripe");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Empty(await gateway.EventsAsync());
    }

    [Fact]
    public async Task Receive_OverTheSourceLimit_413DeclaredOrChunked()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());
        var body = Event("agent.completed", data: $$"""{"blob":"{{new string('x', 70_000)}}"}""");

        using var declared = await SendAsync(gateway.Client, body);
        using var chunked = new HttpRequestMessage(HttpMethod.Post, "/webhooks/twill") { Content = new PushStreamContent(body) };
        chunked.Headers.TryAddWithoutValidation("x-twill-signature", Sign(body));
        using var chunkedResponse = await gateway.CreateClient(null).SendAsync(chunked);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, declared.StatusCode);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, chunkedResponse.StatusCode);
        Assert.Empty(await gateway.EventsAsync());
    }

    [Fact]
    public async Task Receive_NoIdField_IdentifiedByBodyHashSoIdenticalRedeliveriesCollapse()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());
        var body = Event("agent.completed");

        using var first = await SendAsync(gateway.Client, body);
        using var second = await SendAsync(gateway.Client, body);

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        var id = (await BodyAsync(first))["id"]!.GetValue<string>();
        Assert.StartsWith("sha256:", id, StringComparison.Ordinal);
        Assert.Equal(id, (await BodyAsync(second))["id"]!.GetValue<string>());
        Assert.Equal("duplicate", (await BodyAsync(second))["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Receive_IdHeaderConfigured_HeaderWinsOverTheField()
    {
        await using var gateway = await GatewayHost.StartAsync(Config(sourceExtra: "id_header: x-twill-delivery"));
        var body = Event("agent.completed", id: "from-field");

        using var response = await PostAsync(gateway.Client, "twill", Encoding.UTF8.GetBytes(body), ("x-twill-signature", Sign(body)), ("x-twill-delivery", "from-header"));

        Assert.Equal("from-header", (await BodyAsync(response))["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Receive_NumericIdField_StoredAsText()
    {
        await using var gateway = await GatewayHost.StartAsync(Config());
        var body = """{"id":12345,"event_type":"agent.completed","data":{}}""";

        using var response = await SendAsync(gateway.Client, body);

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Equal("12345", (await BodyAsync(response))["id"]!.GetValue<string>());
    }

    /// <summary>Sends a body chunked (no Content-Length).</summary>
    private sealed class PushStreamContent(string body) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            for (var i = 0; i < bytes.Length; i += 8192)
            {
                await stream.WriteAsync(bytes.AsMemory(i, Math.Min(8192, bytes.Length - i)));
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
