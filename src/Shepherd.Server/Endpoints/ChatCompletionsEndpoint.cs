namespace Shepherd.Server.Endpoints;

using System.Globalization;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Limits;
using Shepherd.Providers.OpenAI;
using Shepherd.Providers.Shared;
using Shepherd.Routing;
using Shepherd.Routing.Context;
using Shepherd.Routing.Rules;
using Shepherd.Server.Hosting;
using Shepherd.Server.Http;
using Shepherd.Server.Logging;
using Shepherd.Server.Streaming;

/// <summary>
/// <c>POST /v1/chat/completions</c>, in this order: authenticate (401) → client address (403) → read and validate (400,
/// 413, 415) → resolve the model, through a virtual model's rules if it is one (404) → model access (403) → fit the
/// context window (400) → rate limits and money, reserved atomically (429) → execute → write → settle the
/// reservation with the real usage and cost.
/// </summary>
public sealed class ChatCompletionsEndpoint(GatewayServices gateway)
{
    private readonly StreamRelay _relay = new(gateway);

    /// <summary>For a virtual model: the name of the rule that chose the model.</summary>
    public const string RouteRuleHeader = "x-shepherd-route-rule";

    public async Task HandleAsync(HttpContext context)
    {
        var request = RequestContext.Get(context);
        var auth = gateway.Authenticator.Authenticate(Auth.BearerToken.From(context.Request));
        if (auth.Caller is not { } caller)
        {
            await ErrorResponses.WriteAsync(context, auth.Error!);
            return;
        }

        request.Caller = caller;
        request.Accountable = true;
        if (caller.Key is not null && Admission.CheckAddress(caller, gateway.ClientAddress.Resolve(context)) is { } addressError)
        {
            await FailAsync(context, caller, addressError);
            return;
        }

        if (RequestBody.CheckContentType(context.Request) is { } contentTypeError)
        {
            await FailAsync(context, caller, contentTypeError);
            return;
        }

        var (body, bodyError) = await RequestBody.ReadAsync(context.Request, gateway.Options.MaxBodyBytes, context.RequestAborted);
        if (bodyError is not null)
        {
            await FailAsync(context, caller, bodyError);
            return;
        }

        using (body)
        {
            var chat = ChatRequestParser.Parse(body!.WrittenMemory, out var parseError);
            if (chat is null)
            {
                await FailAsync(context, caller, parseError!);
                return;
            }

            request.RequestedModel = chat.Model;
            request.Streamed = chat.Stream;
            if (gateway.LogBodies)
            {
                Log.RequestBody(gateway.Logger, request.RequestId, Encoding.UTF8.GetString(body.WrittenSpan));
            }

            CatalogModel model;
            int? promptTokens = null;
            if (gateway.Router.TryGet(chat.Model, out var virtualModel))
            {
                // A virtual model: its rules pick the model; access is checked for that model (or the router itself).
                var headers = context.Request.Headers;
                if (RequestHints.TryParse(headers[RequestHints.TagsHeader].ToString(), headers[RequestHints.LatencyBudgetHeader].ToString(), out var hints) is { } hintError)
                {
                    await FailAsync(context, caller, GatewayError.InvalidRequest(hintError, code: "invalid_header"));
                    return;
                }

                var route = gateway.Router.Route(virtualModel, chat, hints);
                model = route.Model;
                promptTokens = route.Features.PromptTokensIfCounted;
                context.Response.Headers[RouteRuleHeader] = route.RuleName;
                if (gateway.Logger.IsEnabled(LogLevel.Information))
                {
                    Log.Routed(gateway.Logger, request.RequestId, route.Explain());
                }

                if (Admission.CheckModel(caller, model, virtualModel.Name) is { } routedError)
                {
                    await FailAsync(context, caller, routedError);
                    return;
                }
            }
            else if (!gateway.Catalog.TryResolve(chat.Model, out model))
            {
                await FailAsync(context, caller, ModelNotFound(chat.Model, caller));
                return;
            }
            else if (Admission.CheckModel(caller, model) is { } modelError)
            {
                await FailAsync(context, caller, modelError);
                return;
            }

            if (chat.N > 1 && !model.Deployments[0].Provider.Capabilities.MultipleChoices)
            {
                await FailAsync(context, caller, GatewayError.InvalidRequest(
                    $"The model '{model.Name}' does not support n > 1.", "n", "unsupported_value"));
                return;
            }

            // Before admission, so limits reserve what is really sent.
            var fitted = gateway.Context.Apply(chat, model, promptTokens);
            if (fitted.Status == ContextStatus.Rejected)
            {
                await FailAsync(context, caller, fitted.Error!);
                return;
            }

            if (fitted.Status == ContextStatus.Truncated)
            {
                chat = fitted.Request;
                promptTokens = fitted.TokensAfter;
                Log.ContextTruncated(gateway.Logger, request.RequestId, model.Name, fitted.Describe(model));
            }
            else if (fitted.Status == ContextStatus.Fits)
            {
                promptTokens ??= fitted.PromptTokens;
            }

            var fallbacks = ParseFallbacks(context.Request, out var fallbackError);
            if (fallbackError is not null)
            {
                await FailAsync(context, caller, fallbackError);
                return;
            }

            if (promptTokens is null && Admission.NeedsEstimate(caller, model))
            {
                promptTokens = gateway.Admission.EstimatePrompt(chat);
            }

            request.PromptTokensCounted = promptTokens;
            var decision = await gateway.Admission.AdmitAsync(caller, chat, model, promptTokens, context.RequestAborted);
            if (caller.Key is { } limited && (limited.Record.Rpm is not null || limited.Record.Tpm is not null))
            {
                RateLimitHeaders.Write(context.Response, decision.Snapshot);
            }

            if (!decision.Allowed)
            {
                await ErrorResponses.WriteAsync(context, decision.Error!);
                return;
            }

            request.Lease = decision.Lease;
            var options = new ExecutionOptions
            {
                Fallbacks = fallbacks,
                OnRoute = request.SetRoute,
                PromptTokens = promptTokens,
                MaxOutputTokens = gateway.Admission.OutputReservation(chat, model),
                RequestId = request.RequestId,
            };
            try
            {
                if (chat.Stream)
                {
                    await StreamAsync(context, request, chat, model, options);
                }
                else
                {
                    await CompleteAsync(context, request, chat, model, options);
                }
            }
            finally
            {
                // Also for failures and abandoned streams: the reservation is released and what was used is charged.
                await gateway.Admission.SettleAsync(request.Lease, request.Usage, request.Cost);
            }
        }
    }

    /// <summary>An error before admission: a limited key still gets its current rate-limit headers.</summary>
    private Task FailAsync(HttpContext context, Security.Caller caller, GatewayError error)
    {
        if (caller.Key is { } key && (key.Record.Rpm is not null || key.Record.Tpm is not null))
        {
            RateLimitHeaders.Write(context.Response, gateway.Limiter.Peek(key));
        }

        return ErrorResponses.WriteAsync(context, error);
    }

    private GatewayError ModelNotFound(string name, Security.Caller caller)
    {
        var closest = gateway.Catalog.Closest(name, visible: m => caller.Key?.Models.Allows(m) ?? true);
        var hint = closest.Count > 0 ? $" Did you mean {string.Join(", ", closest.Select(c => $"'{c}'"))}?" : string.Empty;
        var shown = name.Length > 100 ? name[..100] + "…" : name;
        return GatewayError.NotFound($"The model '{shown}' does not exist or you do not have access to it.{hint}", "model_not_found") with { Param = "model" };
    }

    /// <summary>The per-request fallback chain of <c>x-shepherd-fallbacks: model-a, model-b</c> (replaces the configured one).</summary>
    private IReadOnlyList<CatalogModel>? ParseFallbacks(HttpRequest request, out GatewayError? error)
    {
        error = null;
        var header = request.Headers["x-shepherd-fallbacks"];
        if (header.Count == 0)
        {
            return null;
        }

        var models = new List<CatalogModel>();
        foreach (var value in header)
        {
            foreach (var name in (value ?? string.Empty).Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (!gateway.Catalog.TryResolve(name, out var fallback))
                {
                    error = GatewayError.InvalidRequest($"The fallback model '{(name.Length > 100 ? name[..100] : name)}' in x-shepherd-fallbacks does not exist.", "x-shepherd-fallbacks", "model_not_found");
                    return null;
                }

                if (!models.Contains(fallback))
                {
                    models.Add(fallback);
                }
            }
        }

        return models;
    }

    private async Task CompleteAsync(HttpContext context, RequestContext request, ChatRequest chat, CatalogModel model, ExecutionOptions options)
    {
        var execution = await gateway.Executor.CompleteAsync(chat, model, options, context.RequestAborted);
        request.Route = execution.Route;
        WriteRouteHeaders(context.Response, execution.Route);
        if (!execution.IsSuccess)
        {
            LogFailure(request, execution.Route, execution.Failure);
            await ErrorResponses.WriteAsync(context, execution.Error!);
            return;
        }

        using var completion = execution.Value!;
        var usage = completion.Usage;
        if (completion.UsageMissing)
        {
            using var text = new PooledBuffer(1024);
            OpenAIWire.AppendDeltaText(completion.Json.Span, text);
            usage = new Usage(request.PromptTokensCounted ?? gateway.Estimator.EstimatePrompt(chat), gateway.Estimator.Count(text.WrittenSpan));
            request.UsageEstimated = true;
        }

        request.Usage = usage;
        request.Cost = Pricing.Cost(usage, execution.Route!.Deployment.PriceAt(gateway.Time.GetUtcNow()));
        if (gateway.LogBodies)
        {
            Log.ResponseBody(gateway.Logger, request.RequestId, Encoding.UTF8.GetString(completion.Json.Span));
        }

        var response = context.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/json";
        response.ContentLength = completion.Json.Length;
        response.Headers["x-shepherd-cost-usd"] = request.Cost.ToString(CultureInfo.InvariantCulture);
        await response.Body.WriteAsync(completion.Json, context.RequestAborted);
    }

    private async Task StreamAsync(HttpContext context, RequestContext request, ChatRequest chat, CatalogModel model, ExecutionOptions options)
    {
        var execution = await gateway.Executor.StreamAsync(chat, model, options, context.RequestAborted);
        request.Route = execution.Route;
        WriteRouteHeaders(context.Response, execution.Route);
        if (!execution.IsSuccess)
        {
            LogFailure(request, execution.Route, execution.Failure);
            await ErrorResponses.WriteAsync(context, execution.Error!);
            return;
        }

        // The executor hands over a committed stream: it has content, so the first event is never an error.
        await using var stream = execution.Value!;
        await _relay.RelayAsync(context, request, chat, execution.Route!, stream);
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
        headers["x-shepherd-attempts"] = route.Attempts == 1 ? "1" : route.Attempts.ToString(CultureInfo.InvariantCulture);
        if (route.FallbackFrom is { } requested)
        {
            headers["x-shepherd-fallback"] = $"{requested.Name} -> {route.Model.Name}";
        }
    }
}
