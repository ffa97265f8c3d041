namespace Shepherd.Tests.Webhooks;

using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.DependencyInjection;
using Shepherd.Testing;
using Shepherd.Webhooks;
using Shepherd.Webhooks.Processing;
using Shepherd.Webhooks.Verification;

/// <summary>Signed webhook requests, seed-shaped events and gateway configurations for the webhook tests.</summary>
internal static class WebhookFixtures
{
    public const string Secret = "whsec-current-0123456789abcdef";
    public const string OldSecret = "whsec-previous-0123456789abcdef";

    /// <summary>One provider serving the seed's models, and a source 'twill' with the seed's rules.</summary>
    /// <param name="sourceExtra">More keys of the source (one per line).</param>
    /// <param name="webhooksExtra">More keys of the webhooks section (one line; default: no background workers).</param>
    /// <param name="upstream">An OpenAI-compatible base URL to use instead of the simulated provider.</param>
    /// <param name="top">More top-level YAML (keys, routing, …).</param>
    public static string Config(string sourceExtra = "", string webhooksExtra = "workers: 0", string? upstream = null, string top = "") => $$$"""
        {{{top}}}
        providers:
          - name: sim
        {{{(upstream is null ? "    type: simulated\n    simulated: { completion_tokens: 5 }" : $"    type: openai\n    base_url: {upstream}\n    api_keys: [ sk-upstream ]")}}}
        models:
          - name: deepseek-v3.2
            price: { input: 0.42, output: 0.42 }
            deployments: [ { provider: sim } ]
          - name: gemini-2.5-flash
            price: { input: 2.50, output: 2.50 }
            deployments: [ { provider: sim } ]
          - name: claude-sonnet-4.5
            price: { input: 15.00, output: 15.00 }
            deployments: [ { provider: sim } ]
          - name: gpt-4.1
            price: { input: 8.00, output: 8.00 }
            deployments: [ { provider: sim } ]
        webhooks:
          {{{webhooksExtra}}}
          sources:
            - name: twill
              secrets: [ "{{{Secret}}}", "{{{OldSecret}}}" ]
              signature_header: x-twill-signature
              type_field: event_type
              max_body_bytes: 65536
        {{{Indent(sourceExtra, 6)}}}
              rules:
                - on: agent.completed
                  model: deepseek-v3.2
                  system: "Summarise the following agent result."
                  user: "{{ json data }}"
                  temperature: 0.3
                  max_tokens: 64
                - on: agent.failed
                  model: gemini-2.5-flash
                  system: "Analyse the error and propose fixes."
                  user: "Agent {{ agent_id }}: {{ json data }}"
                - on: agent.handoff
                  model: claude-sonnet-4.5
                  user: "Handoff from {{ agent_id }} to {{ data.to }} in session {{ session_id }}."
                - on: message.received
                  model: gpt-4.1
                  system: "Classify the message."
                  user: "{{ data.text }}"
                - on: "*"
                  action: skip
        """;

    public static string Indent(string text, int spaces) =>
        string.Join("\n", text.Split('\n').Select(line => line.Length == 0 ? line : new string(' ', spaces) + line));

    /// <summary>A seed-shaped event (no id field: the body hash identifies it unless one is given).</summary>
    public static string Event(string type, string? id = null, string agent = "agent-7", string? data = null) =>
        $$"""{{{(id is null ? "" : $"\"id\":\"{id}\",")}}"event_type":"{{type}}","agent_id":"{{agent}}","session_id":"sess-1","timestamp":"2026-03-01T10:00:00Z","data":{{data ?? DefaultData}}}""";

    public const string DefaultData = """{"result":"Wrote the quarterly report","steps":3}""";

    public static string Sign(string body, string secret = Secret, string? timestamp = null) =>
        WebhookSignature.Sign(Encoding.UTF8.GetBytes(secret), timestamp, Encoding.UTF8.GetBytes(body));

    /// <summary>POSTs a body with the given headers (a null value leaves the header out).</summary>
    public static async Task<HttpResponseMessage> PostAsync(HttpClient client, string source, byte[] body, params (string Name, string? Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"/webhooks/{source}") { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        foreach (var (name, value) in headers)
        {
            if (value is not null)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        }

        return await client.SendAsync(request);
    }

    /// <summary>POSTs an event signed with <paramref name="secret"/> in x-twill-signature.</summary>
    public static Task<HttpResponseMessage> SendAsync(HttpClient client, string body, string secret = Secret, string source = "twill") =>
        PostAsync(client, source, Encoding.UTF8.GetBytes(body), ("x-twill-signature", Sign(body, secret)));

    public static string Now(TimeProvider? time = null) => (time ?? TimeProvider.System).GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);

    public static IWebhookEventQuery Query(this GatewayHost gateway) => gateway.Services.GetRequiredService<IWebhookEventQuery>();

    public static WebhookProcessor Processor(this GatewayHost gateway) => gateway.Services.GetRequiredService<WebhookProcessor>();

    public static async Task<IReadOnlyList<WebhookEventSummary>> EventsAsync(this GatewayHost gateway, WebhookJobStatus? status = null) =>
        await gateway.Query().ListAsync(new WebhookListQuery(Status: status, Limit: 1000), CancellationToken.None);

    public static async Task<WebhookEventDetail> EventAsync(this GatewayHost gateway, string id) =>
        (await gateway.Query().FindAsync(id, "twill", CancellationToken.None)).Single();

    /// <summary>Waits (real time, bounded) until the condition holds; for the worker loop running in the background.</summary>
    public static Task WaitUntilAsync(Func<Task<bool>> condition, int timeoutMs = 15_000) =>
        Eventually.HoldsAsync(condition, "the webhook workers' state", TimeSpan.FromMilliseconds(timeoutMs));
}
