namespace Shepherd.Server.Http;

using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Shepherd.Accounting;
using Shepherd.Server.Endpoints;
using Shepherd.Server.Hosting;
using Shepherd.Server.Logging;
using Shepherd.Telemetry;

/// <summary>
/// The fixed first step of every request: request id, the per-request context, the one log line, and the
/// last line of defence that turns any unexpected exception into an OpenAI error (never a stack trace).
/// A chat request also gets its span, and its metrics are recorded here from its usage record.
/// </summary>
public sealed class GatewayMiddleware(RequestDelegate next, GatewayServices gateway, ShepherdMetrics metrics, ShepherdTracing tracing)
{
    private const int ClientClosedRequest = 499;

    private readonly ILogger _logger = gateway.Logger;
    private readonly bool _logRequests = gateway.Config.Logging.Requests;
    private readonly bool _inlineIo = gateway.Config.Server.InlineIo;

    public async Task InvokeAsync(HttpContext context)
    {
        var incoming = context.Request.Headers[RequestIds.Header];
        var fromClient = incoming.Count == 1 && RequestIds.IsAcceptable(incoming[0]);
        var requestId = fromClient ? incoming[0]! : RequestIds.Next();
        var request = new RequestContext { RequestId = requestId, StartTimestamp = Stopwatch.GetTimestamp() };
        context.Features.Set(request);
        context.Response.Headers[RequestIds.Header] = requestId;
        var headTooLarge = RequestHeadLimits.Check(context);

        // Routing ran before this middleware: the endpoint says whether this is a chat request.
        var chat = context.GetEndpoint()?.Metadata.GetMetadata<ChatCompletionsEndpoint>() is not null;
        Activity? span = null;
        if (chat)
        {
            metrics.RequestStarted();
            var headers = context.Request.Headers;
            span = tracing.StartRequest(requestId, headers.TraceParent.ToString(), headers.TraceState.ToString());
        }

        if (_inlineIo && !context.Request.Path.StartsWithSegments("/v1"))
        {
            // With server.inline_io this runs on a socket thread, which must never wait. The client API never does;
            // admin, webhook, health and metrics handlers may wait on the database (SQLite's async calls run
            // synchronously): they continue on the thread pool.
            await Task.Yield();
        }

        var status = 0;
        try
        {
            if (headTooLarge is not null)
            {
                await ErrorResponses.WriteAsync(context, headTooLarge); // answered and logged like any other refusal
            }
            else
            {
                await next(context);
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; the upstream call was cancelled with it. Nothing left to write, but the request
            // still gets its line: 499 (nginx's "client closed request"), with whatever usage was seen.
            status = ClientClosedRequest;
            request.ErrorCode = "client_disconnected";
        }
        catch (BadHttpRequestException ex)
        {
            await ErrorResponses.WriteAsync(context, ex.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? ErrorResponses.PayloadTooLarge(gateway.Options.MaxBodyBytes)
                : ErrorResponses.ForStatus(ex.StatusCode, context));
        }
        catch (Exception ex)
        {
            Log.Unhandled(_logger, ex, requestId, ex.GetType().Name, context.Request.Method, context.Request.Path);
            request.ErrorCode ??= "internal_error";
            if (context.Response.HasStarted)
            {
                // Mid-stream: all we can do is end the connection so the client sees a broken stream, not a silent end.
                // The request is still accounted and logged below, with what it used.
                status = context.RequestAborted.IsCancellationRequested ? ClientClosedRequest : StatusCodes.Status500InternalServerError;
                context.Abort();
            }
            else
            {
                context.Response.Clear();
                context.Response.Headers[RequestIds.Header] = requestId;
                await ErrorResponses.WriteAsync(context, ErrorResponses.ForStatus(500, context));
            }
        }

        var finalStatus = status != 0 ? status : context.Response.StatusCode;
        var elapsed = Stopwatch.GetElapsedTime(request.StartTimestamp);
        UsageRecord? record = null;
        if (request.Accountable)
        {
            // A client's request id may repeat; the record gets an id of its own so it is never taken for a replay.
            record = UsageOf(request, finalStatus, elapsed, fromClient ? RequestIds.Next() : requestId);
            gateway.UsageSink.Write(record);
        }

        if (chat)
        {
            EndChat(span, request, record, finalStatus);
        }

        if (_logRequests)
        {
            var route = request.Route;
            Log.RequestCompleted(
                _logger,
                requestId,
                context.Request.Method,
                context.Request.Path.Value ?? "/",
                finalStatus,
                elapsed.TotalMilliseconds,
                route?.Model.Name ?? request.RequestedModel,
                route?.Deployment.Provider.Name,
                route?.Deployment.Id,
                request.Streamed,
                request.Usage.PromptTokens,
                request.Usage.CompletionTokens,
                request.ErrorCode);
        }
    }

    /// <summary>The request-level metrics (from the usage record, when the request was accountable) and the end of its span.</summary>
    private void EndChat(Activity? span, RequestContext request, UsageRecord? record, int status)
    {
        var model = ModelLabel(request.RequestedModel);
        if (record is not null)
        {
            metrics.RecordRequest(record, model);
        }

        metrics.RequestEnded();
        ShepherdTracing.EndRequest(span, status, record, model, request.ErrorCode);
    }

    /// <summary>The configured name of the model or virtual model asked for: never the client's own text (bounded cardinality).</summary>
    private string ModelLabel(string? requested) =>
        requested is null ? ShepherdMetrics.UnknownModel
        : gateway.Catalog.TryResolve(requested, out var model) ? model.Name
        : gateway.Router.TryGet(requested, out var router) ? router.Name
        : ShepherdMetrics.UnknownModel;

    private UsageRecord UsageOf(RequestContext request, int status, TimeSpan elapsed, string recordId)
    {
        var route = request.Route;
        var usage = request.Usage;
        double? firstToken = null;
        double? tokensPerSecond = null;
        if (request.FirstByteTimestamp != 0)
        {
            var first = Stopwatch.GetElapsedTime(request.StartTimestamp, request.FirstByteTimestamp);
            firstToken = first.TotalMilliseconds;
            var generating = (elapsed - first).TotalSeconds;
            tokensPerSecond = generating > 0 && usage.CompletionTokens > 0 ? usage.CompletionTokens / generating : null;
        }

        return new UsageRecord
        {
            Time = gateway.Time.GetUtcNow(),
            RequestId = request.RequestId,
            RecordId = recordId,
            KeyId = request.Caller?.KeyId ?? "anonymous",
            Team = request.Caller?.Team,
            RequestedModel = request.RequestedModel,
            ServedModel = route?.Model.Name,
            Provider = route?.Deployment.Provider.Name,
            Deployment = route?.Deployment.Id,
            Attempts = route?.Attempts ?? 0,
            FallbackUsed = route?.FallbackFrom is not null,
            Streamed = request.Streamed,
            Status = status,
            ErrorClass = status is >= 200 and < 300 && request.ErrorCode is null ? null : request.ErrorCode ?? "http_" + status.ToString(System.Globalization.CultureInfo.InvariantCulture),
            PromptTokens = usage.PromptTokens,
            CachedTokens = usage.CachedTokens,
            CompletionTokens = usage.CompletionTokens,
            ReasoningTokens = usage.ReasoningTokens,
            CacheWriteTokens = usage.CacheWriteTokens,
            Cost = request.Cost,
            LatencyMs = elapsed.TotalMilliseconds,
            TimeToFirstTokenMs = firstToken,
            OutputTokensPerSecond = tokensPerSecond,
            Estimated = request.UsageEstimated,
        };
    }
}
