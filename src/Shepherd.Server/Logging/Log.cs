namespace Shepherd.Server.Logging;

using Microsoft.Extensions.Logging;

/// <summary>Every log line the server writes, source-generated. Keys and bodies never appear unless bodies are enabled.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information,
        Message = "{RequestId} {Method} {Path} {Status} {LatencyMs:F1}ms model={Model} provider={Provider} deployment={Deployment} stream={Stream} prompt_tokens={PromptTokens} completion_tokens={CompletionTokens} error={Error}")]
    public static partial void RequestCompleted(
        ILogger logger, string requestId, string method, string path, int status, double latencyMs,
        string? model, string? provider, string? deployment, bool stream, int promptTokens, int completionTokens, string? error);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "{RequestId} unhandled {ExceptionType} while processing {Method} {Path}")]
    public static partial void Unhandled(ILogger logger, Exception exception, string requestId, string exceptionType, string method, string path);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "{RequestId} upstream {Provider} failed mid-stream: {FailureClass} {Message}")]
    public static partial void StreamFailed(ILogger logger, string requestId, string provider, string failureClass, string message);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "{RequestId} upstream {Provider} failed: {FailureClass} status={UpstreamStatus} {Message}")]
    public static partial void UpstreamFailed(ILogger logger, string requestId, string provider, string failureClass, int upstreamStatus, string message);

    [LoggerMessage(EventId = 6, Level = LogLevel.Information, Message = "{RequestId} request body: {Body}")]
    public static partial void RequestBody(ILogger logger, string requestId, string body);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "{RequestId} response body: {Body}")]
    public static partial void ResponseBody(ILogger logger, string requestId, string body);

    [LoggerMessage(EventId = 40, Level = LogLevel.Information, Message = "{RequestId} routed {Decision}")]
    public static partial void Routed(ILogger logger, string requestId, string decision);

    [LoggerMessage(EventId = 41, Level = LogLevel.Information, Message = "{RequestId} context of {Model}: {Outcome}")]
    public static partial void ContextTruncated(ILogger logger, string requestId, string model, string outcome);

    [LoggerMessage(EventId = 10, Level = LogLevel.Warning,
        Message = "No master key configured (set SHEPHERD_MASTER_KEY or master_key): a development master key was generated for this run and printed once to the console")]
    public static partial void GeneratedMasterKey(ILogger logger);

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Shepherd {Version} serving {ModelCount} model(s) over {ProviderCount} provider(s) from {Source}")]
    public static partial void Started(ILogger logger, string version, int modelCount, int providerCount, string source);

    [LoggerMessage(EventId = 12, Level = LogLevel.Warning, Message = "Configuration: {Problem}")]
    public static partial void ConfigWarning(ILogger logger, string problem);
}
