namespace Shepherd.Server.Endpoints;

using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Routing;
using Shepherd.Server.Hosting;
using Shepherd.Server.Http;
using Shepherd.Server.Logging;
using Shepherd.Server.Streaming;

/// <summary>
/// <c>POST /v1/chat/completions</c>: authenticate → read and validate → resolve the model → execute → write.
/// </summary>
public sealed class ChatCompletionsEndpoint(GatewayServices gateway)
{
    public async Task HandleAsync(HttpContext context)
    {
        var request = RequestContext.Get(context);
        var caller = gateway.Authenticator.Authenticate(Auth.BearerToken.From(context.Request));
        if (caller.Error is not null)
        {
            await ErrorResponses.WriteAsync(context, caller.Error);
            return;
        }

        request.Caller = caller.Caller;
        if (RequestBody.CheckContentType(context.Request) is { } contentTypeError)
        {
            await ErrorResponses.WriteAsync(context, contentTypeError);
            return;
        }

        var (body, bodyError) = await RequestBody.ReadAsync(context.Request, gateway.Options.MaxBodyBytes, context.RequestAborted);
        if (bodyError is not null)
        {
            await ErrorResponses.WriteAsync(context, bodyError);
            return;
        }

        using (body)
        {
            var chat = ChatRequestParser.Parse(body!.WrittenMemory, out var parseError);
            if (chat is null)
            {
                await ErrorResponses.WriteAsync(context, parseError!);
                return;
            }

            request.RequestedModel = chat.Model;
            request.Streamed = chat.Stream;
            if (gateway.LogBodies)
            {
                Log.RequestBody(gateway.Logger, request.RequestId, Encoding.UTF8.GetString(body.WrittenSpan));
            }

            if (!gateway.Catalog.TryResolve(chat.Model, out var model))
            {
                await ErrorResponses.WriteAsync(context, ModelNotFound(chat.Model));
                return;
            }

            if (chat.N > 1 && !model.Deployments[0].Provider.Capabilities.MultipleChoices)
            {
                await ErrorResponses.WriteAsync(context, GatewayError.InvalidRequest(
                    $"The model '{model.Name}' does not support n > 1.", "n", "unsupported_value"));
                return;
            }

            if (chat.Stream)
            {
                await StreamAsync(context, request, chat, model);
            }
            else
            {
                await CompleteAsync(context, request, chat, model);
            }
        }
    }

    private GatewayError ModelNotFound(string name)
    {
        var closest = gateway.Catalog.Closest(name);
        var hint = closest.Count > 0 ? $" Did you mean {string.Join(", ", closest.Select(c => $"'{c}'"))}?" : string.Empty;
        var shown = name.Length > 100 ? name[..100] + "…" : name;
        return GatewayError.NotFound($"The model '{shown}' does not exist or you do not have access to it.{hint}", "model_not_found") with { Param = "model" };
    }

    private async Task CompleteAsync(HttpContext context, RequestContext request, ChatRequest chat, CatalogModel model)
    {
        var execution = await gateway.Executor.CompleteAsync(chat, model, context.RequestAborted, request.SetRoute);
        request.Route = execution.Route;
        WriteRouteHeaders(context.Response, execution.Route);
        if (!execution.IsSuccess)
        {
            LogFailure(request, execution.Route, execution.Failure);
            await ErrorResponses.WriteAsync(context, execution.Error!);
            return;
        }

        using var completion = execution.Value!;
        request.Usage = completion.Usage;
        if (gateway.LogBodies)
        {
            Log.ResponseBody(gateway.Logger, request.RequestId, Encoding.UTF8.GetString(completion.Json.Span));
        }

        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json";
        response.ContentLength = completion.Json.Length;
        await response.Body.WriteAsync(completion.Json, context.RequestAborted);
    }

    private async Task StreamAsync(HttpContext context, RequestContext request, ChatRequest chat, CatalogModel model)
    {
        var execution = await gateway.Executor.StreamAsync(chat, model, context.RequestAborted, request.SetRoute);
        request.Route = execution.Route;
        WriteRouteHeaders(context.Response, execution.Route);
        if (!execution.IsSuccess)
        {
            LogFailure(request, execution.Route, execution.Failure);
            await ErrorResponses.WriteAsync(context, execution.Error!);
            return;
        }

        await using var stream = execution.Value!;

        // Pull the first event before committing to 200: a stream that fails before any byte is an HTTP error.
        if (!await stream.MoveNextAsync())
        {
            await ErrorResponses.WriteAsync(context, GatewayError.Server(502, "The upstream provider ended the stream without sending anything.", "bad_upstream_response"));
            return;
        }

        if (stream.Current.Kind == StreamEventKind.Error)
        {
            var failure = stream.Current.Failure!;
            gateway.Executor.RecordStreamFailure(execution.Route!, failure);
            LogFailure(request, execution.Route, failure);
            await ErrorResponses.WriteAsync(context, failure.ToClientError());
            return;
        }

        SseWriter.Start(context);
        var writer = context.Response.BodyWriter;
        var cancellation = context.RequestAborted;
        var usage = default(Usage);
        try
        {
            do
            {
                var current = stream.Current;
                if (current.Kind == StreamEventKind.Error)
                {
                    var failure = current.Failure!;
                    gateway.Executor.RecordStreamFailure(execution.Route!, failure);
                    Log.StreamFailed(gateway.Logger, request.RequestId, execution.Route!.Deployment.Provider.Name, failure.Class.ToString(), failure.Message);
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

                // The gateway always asks for usage; the usage chunk reaches the client only if it asked too.
                if (!current.IsUsageOnly || chat.IncludeUsage)
                {
                    SseWriter.WriteData(writer, current.Json.Span);
                    if (!stream.HasBufferedEvent)
                    {
                        await SseWriter.FlushAsync(writer, cancellation);
                    }
                }
            }
            while (await stream.MoveNextAsync());

            SseWriter.WriteDone(writer);
            await SseWriter.FlushAsync(writer, cancellation);
        }
        finally
        {
            // Also when the client went away mid-stream: whatever usage was seen is still accounted.
            request.Usage = usage;
        }
    }

    private void LogFailure(RequestContext request, RouteInfo? route, UpstreamFailure? failure)
    {
        if (failure is not null && route is not null)
        {
            Log.UpstreamFailed(gateway.Logger, request.RequestId, route.Deployment.Provider.Name, failure.Class.ToString(), failure.UpstreamStatus, failure.Message);
        }
    }

    private static void WriteRouteHeaders(HttpResponse response, RouteInfo? route)
    {
        if (route is null)
        {
            return;
        }

        var headers = response.Headers;
        headers["x-shepherd-model"] = route.Model.Name;
        headers["x-shepherd-provider"] = route.Deployment.Provider.Name;
        headers["x-shepherd-deployment"] = route.Deployment.Id;
        headers["x-shepherd-attempts"] = route.Attempts == 1 ? "1" : route.Attempts.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }
}
