namespace Shepherd.Server.Streaming;

using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Providers.OpenAI;
using Shepherd.Providers.Shared;
using Shepherd.Routing;
using Shepherd.Server.Hosting;
using Shepherd.Server.Http;
using Shepherd.Server.Logging;

/// <summary>
/// Relays a committed stream to the client as OpenAI SSE: chunks as they arrive (flushed only when the next one is
/// not already at hand), the usage chunk only when the client asked for it (with the request's cost added), an
/// in-band error event when the upstream fails mid-stream, and <c>[DONE]</c> at a clean end. Whatever happens —
/// the end, an upstream failure, the client leaving — the request's usage and cost are set: the provider's usage,
/// else the gateway's count of what was relayed.
/// </summary>
internal sealed class StreamRelay(GatewayServices gateway)
{
    public async Task RelayAsync(HttpContext context, RequestContext request, ChatRequest chat, RouteInfo route, ChatStream stream)
    {
        if (!await stream.MoveNextAsync())
        {
            await ErrorResponses.WriteAsync(context, GatewayError.Server(502, "The upstream provider ended the stream without sending anything.", "bad_upstream_response"));
            return;
        }

        // One price for the whole stream, so the cost in the usage chunk is the cost recorded, even across an effective_from.
        var price = route.Deployment.PriceAt(gateway.Time.GetUtcNow());
        SseWriter.Start(context);
        var writer = context.Response.BodyWriter;
        var cancellation = context.RequestAborted;
        Usage? usage = null;
        Usage? estimate = null;
        PooledBuffer? relayed = null;
        var identity = chat.IncludeUsage ? EstimatedUsageChunk.Read(stream.Current.Json.Span) : default;

        // The usage when the provider reported none: the prompt estimate and the tokens of what was relayed.
        Usage Estimate() => estimate ??= new Usage(request.PromptTokensCounted ?? gateway.Estimator.EstimatePrompt(chat), relayed is null ? 0 : gateway.Estimator.Count(relayed.WrittenSpan));
        try
        {
            while (true)
            {
                var current = stream.Current;
                if (current.Kind == StreamEventKind.Error)
                {
                    var failure = current.Failure!;
                    Log.StreamFailed(gateway.Logger, request.RequestId, route.Deployment.Provider.Name, failure.Class.ToString(), failure.Message);
                    var error = failure.ToClientError();
                    request.ErrorCode = error.Code ?? error.Type;
                    SseWriter.WriteData(writer, ErrorResponses.Serialize(error));
                    await SseWriter.FlushAsync(writer, cancellation);
                    return;
                }

                if (current.Usage is { } chunkUsage)
                {
                    usage = chunkUsage;
                }
                else if (current.HasContent && usage is null)
                {
                    // Kept in case the stream ends without usage (abandoned or dropped): then it is counted.
                    relayed ??= new PooledBuffer(256);
                    OpenAIWire.AppendDeltaText(current.Json.Span, relayed);
                }

                // The gateway always asks for usage; the usage chunk reaches the client only if it asked too.
                if (!current.IsUsageOnly)
                {
                    SseWriter.WriteData(writer, current.Json.Span);
                }
                else if (chat.IncludeUsage)
                {
                    // The final usage chunk also says what the request cost (SDKs ignore unknown fields).
                    var cost = current.Usage is { } chunkCost ? Pricing.Cost(chunkCost, price) : 0m;
                    SseWriter.WriteData(writer, WithShepherdField(current.Json.Span, cost, request.RequestId));
                }

                // Flush only when the next event is not already at hand, so bursts go out in one write.
                var next = stream.MoveNextAsync();
                if (!next.IsCompleted)
                {
                    await SseWriter.FlushAsync(writer, cancellation);
                    if (request.FirstByteTimestamp == 0)
                    {
                        request.FirstByteTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
                    }
                }

                if (!await next)
                {
                    break;
                }
            }

            if (usage is null && chat.IncludeUsage)
            {
                // The client asked for usage and the provider sent none: it gets the gateway's count, marked estimated.
                SseWriter.WriteData(writer, EstimatedUsageChunk.Write(identity, Estimate(), Pricing.Cost(Estimate(), price), request.RequestId));
            }

            SseWriter.WriteDone(writer);
            await SseWriter.FlushAsync(writer, cancellation);

            // A stream that arrived in one burst reached the client only now: that is its time to first token.
            if (request.FirstByteTimestamp == 0)
            {
                request.FirstByteTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
            }
        }
        finally
        {
            // Also when the client went away mid-stream: what was generated is accounted.
            if (usage is { } reported)
            {
                request.Usage = reported;
            }
            else
            {
                request.Usage = Estimate();
                request.UsageEstimated = true;
            }

            relayed?.Dispose();
            request.Cost = Pricing.Cost(request.Usage, price);
        }
    }

    /// <summary>The usage chunk with <c>"shepherd":{"cost_usd":…,"request_id":…}</c> added before its closing brace.</summary>
    private static byte[] WithShepherdField(ReadOnlySpan<byte> chunk, decimal cost, string requestId)
    {
        var end = chunk.LastIndexOf((byte)'}');
        if (end < 0)
        {
            return chunk.ToArray();
        }

        var field = Encoding.UTF8.GetBytes(string.Create(
            CultureInfo.InvariantCulture,
            $",\"shepherd\":{{\"cost_usd\":{cost},\"request_id\":\"{requestId}\"}}"));
        var result = new byte[end + field.Length + (chunk.Length - end)];
        chunk[..end].CopyTo(result);
        field.CopyTo(result.AsSpan(end));
        chunk[end..].CopyTo(result.AsSpan(end + field.Length));
        return result;
    }

}
