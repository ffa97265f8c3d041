namespace Shepherd.Webhooks.Delivery;

using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Webhooks.Processing;
using Shepherd.Webhooks.Verification;

/// <summary>
/// POSTs a result to the source's <c>deliver.url</c>, signed like incoming webhooks with a timestamp:
/// <c>x-shepherd-signature: sha256=HMAC(secret, "{x-shepherd-timestamp}.{body}")</c>. Receivers should deduplicate by
/// <c>x-shepherd-event-id</c>: a delivery is retried until it is answered 2xx, so it may arrive more than once.
/// </summary>
public sealed class ResultDelivery : IDisposable
{
    public const string SignatureHeader = "x-shepherd-signature";
    public const string TimestampHeader = "x-shepherd-timestamp";
    public const string EventIdHeader = "x-shepherd-event-id";
    public const string SourceHeader = "x-shepherd-source";

    private readonly HttpClient _http;
    private readonly TimeProvider _time;

    public ResultDelivery(TimeProvider time, HttpMessageHandler? handler = null)
    {
        _time = time;
        _http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            AllowAutoRedirect = false,
            UseCookies = false,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    /// <summary>The body delivered for a result.</summary>
    public static byte[] Body(WebhookLeasedJob job, WebhookResult result)
    {
        var buffer = new ArrayBufferWriter<byte>(512 + result.Text.Length);
        using (var w = new Utf8JsonWriter(buffer, JsonDefaults.Writer))
        {
            w.WriteStartObject();
            w.WriteString("id"u8, job.EventId);
            w.WriteString("source"u8, job.Source);
            w.WriteString("type"u8, job.EventType);
            w.WriteString("status"u8, "completed"u8);
            w.WriteStartObject("result"u8);
            w.WriteString("model"u8, result.Model);
            w.WriteString("text"u8, result.Text);
            if (result.FinishReason is { } finish)
            {
                w.WriteString("finish_reason"u8, finish);
            }

            w.WriteStartObject("usage"u8);
            w.WriteNumber("prompt_tokens"u8, result.PromptTokens);
            w.WriteNumber("completion_tokens"u8, result.CompletionTokens);
            w.WriteNumber("total_tokens"u8, result.PromptTokens + result.CompletionTokens);
            w.WriteEndObject();
            w.WriteNumber("cost_usd"u8, result.CostUsd);
            w.WriteNumber("latency_ms"u8, Math.Round(result.LatencyMs, 1));
            w.WriteString("request_id"u8, result.RequestId);
            w.WriteString("completed_at"u8, result.CompletedAt);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    public async Task<GatewayCall> DeliverAsync(WebhookLeasedJob job, WebhookDelivery delivery, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        if (job.Result is not { } result)
        {
            return new GatewayCall(AttemptVerdict.Dead, null, null, "the event has no result to deliver", null, TimeSpan.Zero);
        }

        var body = Body(job, result);
        var timestamp = _time.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
        using var request = new HttpRequestMessage(HttpMethod.Post, delivery.Url)
        {
            Content = new ByteArrayContent(body) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        };
        request.Headers.TryAddWithoutValidation(SignatureHeader, WebhookSignature.Sign(delivery.Secret, timestamp, body));
        request.Headers.TryAddWithoutValidation(TimestampHeader, timestamp);
        request.Headers.TryAddWithoutValidation(EventIdHeader, job.EventId);
        request.Headers.TryAddWithoutValidation(SourceHeader, job.Source);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(delivery.Timeout);
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, deadline.Token).ConfigureAwait(false);
            var status = (int)response.StatusCode;
            var elapsed = Stopwatch.GetElapsedTime(started);
            if (response.IsSuccessStatusCode)
            {
                return new GatewayCall(AttemptVerdict.Success, status, result, null, null, elapsed);
            }

            // A receiver's refusal is often passing (a deploy, a proxy): retried like any failure, except 410 Gone.
            return new GatewayCall(status == 410 ? AttemptVerdict.Dead : AttemptVerdict.Retry, status, null, $"the receiver answered {status}", LoopbackGateway.RetryAfterOf(response), elapsed);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return new GatewayCall(AttemptVerdict.Retry, null, null, $"timed out after {delivery.Timeout.TotalSeconds:F0} s", null, Stopwatch.GetElapsedTime(started));
        }
        catch (HttpRequestException ex)
        {
            return new GatewayCall(AttemptVerdict.Retry, null, null, $"the receiver could not be reached: {ex.Message}", null, Stopwatch.GetElapsedTime(started));
        }
    }

    public void Dispose() => _http.Dispose();
}
