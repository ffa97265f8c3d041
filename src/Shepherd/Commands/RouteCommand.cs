namespace Shepherd.Cli.Commands;

using System.CommandLine;
using System.Text;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Providers;
using Shepherd.Routing;
using Shepherd.Routing.Context;
using Shepherd.Routing.Rules;
using Shepherd.Server.Http;

/// <summary>
/// <c>shepherd route explain --model M --request FILE [--config FILE] [--header 'name: value']</c>: what the gateway
/// would do with a request, without sending it: the virtual model's rules as checked, the chosen model, its context
/// check and its deployments in the order they would be tried.
/// </summary>
internal static class RouteCommand
{
    /// <param name="preview">The deployment order shown (default: <see cref="DeploymentOrderPreview.Default"/>).</param>
    public static Command Create(Func<CatalogModel, ChatRequest, IReadOnlyList<(CatalogDeployment Deployment, string Reason)>>? preview = null)
    {
        var config = ShepherdCli.ConfigOption();
        var model = new Option<string?>("--model", "-m")
        {
            Description = "The model to explain, usually a virtual model (router). Default: the request's own 'model'.",
            HelpName = "NAME",
        };
        var request = new Option<string>("--request", "-r")
        {
            Description = "A Chat Completions request body (JSON file, as a client would POST it); '-' reads standard input.",
            HelpName = "FILE",
            Required = true,
        };
        var headers = new Option<string[]>("--header", "-H")
        {
            Description = $"A request header, as 'name: value' ({RequestHints.TagsHeader}, {RequestHints.LatencyBudgetHeader}); repeatable.",
            HelpName = "HEADER",
            AllowMultipleArgumentsPerToken = false,
        };

        var explain = new Command("explain", "Explain how the gateway would route a request: rules checked, chosen model, context check, deployment order. Sends nothing.")
        {
            config,
            model,
            request,
            headers,
        };
        explain.SetAction(parse => Explain(
            parse.GetValue(config),
            parse.GetValue(model),
            parse.GetValue(request)!,
            parse.GetValue(headers) ?? [],
            preview ?? DeploymentOrderPreview.Default,
            parse.InvocationConfiguration.Output,
            parse.InvocationConfiguration.Error));

        var command = new Command("route", "Inspect routing (see 'route explain').");
        command.Subcommands.Add(explain);
        return command;
    }

    private static int Explain(
        string? configPath,
        string? modelName,
        string requestPath,
        string[] headerLines,
        Func<CatalogModel, ChatRequest, IReadOnlyList<(CatalogDeployment Deployment, string Reason)>> preview,
        TextWriter output,
        TextWriter error)
    {
        var loaded = ConfigLoader.Load(configPath);
        if (!loaded.IsValid)
        {
            foreach (var problem in loaded.Errors)
            {
                error.WriteLine($"error: {problem}");
            }

            error.WriteLine($"{loaded.Source}: the configuration is not valid (see 'shepherd config check').");
            return 1;
        }

        string? tags = null;
        string? budget = null;
        foreach (var line in headerLines)
        {
            if (!RequestHints.TrySplitHeader(line, out var name, out var value))
            {
                error.WriteLine($"error: --header '{line}' is not 'name: value'.");
                return 1;
            }

            if (name.Equals(RequestHints.TagsHeader, StringComparison.OrdinalIgnoreCase))
            {
                tags = tags is null ? value : $"{tags},{value}";
            }
            else if (name.Equals(RequestHints.LatencyBudgetHeader, StringComparison.OrdinalIgnoreCase))
            {
                budget = value;
            }
            else
            {
                output.WriteLine($"note: header '{name}' does not affect routing; ignored.");
            }
        }

        byte[] body;
        try
        {
            body = requestPath == "-" ? ReadAll(Console.OpenStandardInput()) : File.ReadAllBytes(requestPath);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error.WriteLine($"error: cannot read '{requestPath}': {ex.Message}");
            return 1;
        }

        var chat = ChatRequestParser.Parse(body, out var parseError);
        if (chat is null)
        {
            error.WriteLine($"error: the gateway would answer {parseError!.Status}:");
            error.WriteLine(Encoding.UTF8.GetString(ErrorResponses.Serialize(parseError)));
            return 1;
        }

        var config = loaded.Config!;
        var providers = config.Providers.ToDictionary(
            p => p.Name,
            p => new ProviderHandle(ProviderFactory.Create(p, TimeProvider.System), new UpstreamKeyRing(p.ApiKeys)),
            StringComparer.OrdinalIgnoreCase);
        try
        {
            var catalog = new ModelCatalog(config, providers, TimeProvider.System);
            var router = new VirtualModelRouter(config.Routers, catalog, TokenEstimator.Default);
            var name = modelName ?? chat.Model;
            output.WriteLine($"Request: {requestPath} (model '{chat.Model}', {Plural(chat.MessageCount, "message")}, {Plural(chat.ToolCount, "tool")})");

            CatalogModel target;
            int? promptTokens = null;
            if (router.TryGet(name, out var virtualModel))
            {
                if (RequestHints.TryParse(tags, budget, out var hints) is { } hintError)
                {
                    error.WriteLine($"error: the gateway would answer 400: {hintError}");
                    return 1;
                }

                var decision = router.Route(virtualModel, chat, hints);
                output.WriteLine($"Virtual model: {virtualModel.Name} ({Plural(virtualModel.Rules.Count, "rule")})");
                var width = virtualModel.Rules.Max(r => r.Name.Length);
                foreach (var check in decision.Checks())
                {
                    output.WriteLine($"  {check.Rule.Index + 1,2}. {check.Rule.Name.PadRight(width)}  {(check.Matched ? "MATCH" : "no   ")}  {check.Reason}");
                }

                foreach (var skipped in virtualModel.Rules.Skip(decision.Rule.Index + 1))
                {
                    output.WriteLine($"  {skipped.Index + 1,2}. {skipped.Name.PadRight(width)}  -      not checked (an earlier rule matched)");
                }

                output.WriteLine($"Chosen model: {decision.Model.Name} (rule '{decision.RuleName}', {ChatCompletionsHeader}: {decision.RuleName})");
                output.WriteLine($"Decision: {decision.Explain()}");
                target = decision.Model;
                promptTokens = decision.Features.PromptTokensIfCounted;
            }
            else if (catalog.TryResolve(name, out var direct))
            {
                output.WriteLine($"Model: {direct.Name} (not a virtual model: no rules to check)");
                target = direct;
            }
            else
            {
                var known = router.Names.Concat(catalog.Models.Select(m => m.Name));
                var suggestion = ConfigBinder.Suggest(name, known);
                error.WriteLine($"error: the model '{name}' is neither a configured model, alias nor router{(suggestion is null ? "" : $" (did you mean '{suggestion}'?)")}.");
                return 1;
            }

            var fitted = new ContextWindowManager(TokenEstimator.Default).Apply(chat, target, promptTokens);
            output.WriteLine($"Context: {fitted.Describe(target)}");
            if (fitted.Status == ContextStatus.Rejected)
            {
                output.WriteLine($"The gateway would answer {fitted.Error!.Status} {fitted.Error.Code}; nothing would be sent.");
                return 0;
            }

            output.WriteLine("Deployments, in the order they would be tried:");
            var order = preview(target, fitted.Request);
            for (var i = 0; i < order.Count; i++)
            {
                var (deployment, reason) = order[i];
                output.WriteLine($"  {i + 1,2}. {deployment.Id} (provider {deployment.Handle.Name}, {deployment.Provider.Type}): {reason}");
            }

            return 0;
        }
        finally
        {
            foreach (var handle in providers.Values)
            {
                (handle.Provider as IDisposable)?.Dispose();
            }
        }
    }

    private const string ChatCompletionsHeader = Server.Endpoints.ChatCompletionsEndpoint.RouteRuleHeader;

    private static string Plural(int count, string noun) => count == 1 ? $"1 {noun}" : $"{count} {noun}s";

    private static byte[] ReadAll(Stream stream)
    {
        using var memory = new MemoryStream();
        stream.CopyTo(memory);
        return memory.ToArray();
    }
}
