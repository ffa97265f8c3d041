namespace Shepherd.Routing.Context;

using System.Buffers;
using System.Text.Json;
using Shepherd.Accounting;
using Shepherd.Chat;
using Shepherd.Configuration;
using Shepherd.Errors;

/// <summary>What the context check did with a request.</summary>
public enum ContextStatus : byte
{
    /// <summary>The model has no <c>context</c> settings or no <c>context_window</c>: nothing was counted.</summary>
    NotChecked,

    /// <summary>The prompt fits.</summary>
    Fits,

    /// <summary>The oldest messages were dropped so that the prompt fits; <see cref="ContextResult.Request"/> is the new request.</summary>
    Truncated,

    /// <summary>The prompt does not fit (and could not be made to): 400 <c>context_length_exceeded</c>.</summary>
    Rejected,
}

/// <summary>The outcome of <see cref="ContextWindowManager.Apply"/>.</summary>
public readonly record struct ContextResult(
    ContextStatus Status,
    ChatRequest Request,
    GatewayError? Error = null,
    int PromptTokens = 0,
    int Limit = 0,
    int DroppedMessages = 0,
    int TokensAfter = 0)
{
    /// <summary>One line for logs and <c>shepherd route explain</c>.</summary>
    public string Describe(CatalogModel model)
    {
        var window = model.Config.ContextWindow;
        var reserved = model.Config.Context?.ReservedOutput;
        return Status switch
        {
            ContextStatus.NotChecked when model.Config.Context is null => "not checked (the model has no context settings)",
            ContextStatus.NotChecked => "not checked (the model has no context_window)",
            ContextStatus.Fits => $"prompt ~{PromptTokens} tokens fits {Limit} (context_window {window} - reserved_output {reserved})",
            ContextStatus.Truncated =>
                $"prompt ~{PromptTokens} tokens exceeds {Limit} (context_window {window} - reserved_output {reserved}): truncated, {DroppedMessages} oldest message(s) dropped, ~{TokensAfter} tokens left",
            _ => $"prompt ~{PromptTokens} tokens exceeds {Limit} (context_window {window} - reserved_output {reserved}): rejected: {Error?.Message}",
        };
    }
}

/// <summary>
/// Makes a request fit its model's context window, as the model's <c>context</c> settings say: <c>reject</c> answers
/// 400 <c>context_length_exceeded</c>; <c>truncate</c> drops the oldest conversation turns.
/// </summary>
/// <remarks>
/// Truncation keeps every system and developer message, the last user message and the newest turn, and drops whole
/// turns oldest first: an assistant message that called tools goes together with the tool results that answer it, so
/// no tool message is ever left without its call. The new body is the old one with only <c>messages</c> rewritten
/// (every other field stays byte for byte), validated again by <see cref="ChatRequestParser"/>.
/// </remarks>
public sealed class ContextWindowManager(TokenEstimator estimator)
{
    public const string ErrorCode = "context_length_exceeded";

    /// <param name="request">The validated request.</param>
    /// <param name="model">The model it goes to.</param>
    /// <param name="knownPromptTokens">The prompt estimate, when routing already counted it.</param>
    public ContextResult Apply(ChatRequest request, CatalogModel model, int? knownPromptTokens = null)
    {
        if (model.Config.Context is not { } settings || model.Config.ContextWindow is not { } window)
        {
            return new ContextResult(ContextStatus.NotChecked, request);
        }

        var limit = Math.Max(0, window - settings.ReservedOutput);
        var tokens = knownPromptTokens ?? estimator.EstimatePrompt(request);
        if (tokens <= limit)
        {
            return new ContextResult(ContextStatus.Fits, request, PromptTokens: tokens, Limit: limit);
        }

        if (settings.Overflow != ContextConfig.Truncate)
        {
            var message = $"This model's maximum context length is {window} tokens, of which {settings.ReservedOutput} are reserved for the output, " +
                          $"but your messages take about {tokens} tokens. Please reduce the length of the messages.";
            return new ContextResult(ContextStatus.Rejected, request, TooLong(message), tokens, limit);
        }

        return Truncate(request, tokens, limit, window, settings.ReservedOutput);
    }

    private ContextResult Truncate(ChatRequest request, int tokens, int limit, int window, int reserved)
    {
        var messages = request.MessagesRange.Slice(request.Body);
        var parsed = ReadMessages(messages.Span);
        var turns = GroupTurns(parsed);

        // What is not messages (reply priming, tools, response format) stays whatever is dropped.
        var total = tokens;
        var dropped = new bool[parsed.Count];
        var droppedCount = 0;
        foreach (var turn in turns)
        {
            if (total <= limit)
            {
                break;
            }

            if (turn.Pinned)
            {
                continue;
            }

            foreach (var index in turn.Members)
            {
                dropped[index] = true;
                total -= parsed[index].Tokens;
                droppedCount++;
            }
        }

        if (total > limit)
        {
            var message = $"This model's maximum context length is {window} tokens, of which {reserved} are reserved for the output. " +
                          $"Your messages take about {tokens} tokens; even after dropping {droppedCount} older message(s), the system messages and the newest messages take about {total}. " +
                          "Please reduce the length of the messages.";
            return new ContextResult(ContextStatus.Rejected, request, TooLong(message), tokens, limit, droppedCount, total);
        }

        var body = Rebuild(request, messages.Span, parsed, dropped);
        var truncated = ChatRequestParser.Parse(body, out var error);
        return truncated is null
            ? new ContextResult(ContextStatus.Rejected, request, error, tokens, limit, droppedCount, total)
            : new ContextResult(ContextStatus.Truncated, truncated, null, tokens, limit, droppedCount, total);
    }

    private static GatewayError TooLong(string message) => GatewayError.InvalidRequest(message, "messages", ErrorCode);

    private enum Role : byte
    {
        Other,
        System,
        User,
        Assistant,
        Tool,
        Function,
    }

    private sealed record Message(int Start, int Length, Role Role, int Tokens, List<string>? CallIds, bool CallsFunction, string? ResultId);

    private sealed class Turn
    {
        public List<int> Members { get; } = [];

        public bool Pinned { get; set; }
    }

    private List<Message> ReadMessages(ReadOnlySpan<byte> messages)
    {
        var list = new List<Message>();
        var reader = new Utf8JsonReader(messages);
        reader.Read();
        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            var start = (int)reader.TokenStartIndex;
            var role = Role.Other;
            List<string>? callIds = null;
            var callsFunction = false;
            string? resultId = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("role"u8))
                {
                    reader.Read();
                    role = reader.ValueTextEquals("system"u8) || reader.ValueTextEquals("developer"u8) ? Role.System
                        : reader.ValueTextEquals("user"u8) ? Role.User
                        : reader.ValueTextEquals("assistant"u8) ? Role.Assistant
                        : reader.ValueTextEquals("tool"u8) ? Role.Tool
                        : reader.ValueTextEquals("function"u8) ? Role.Function
                        : Role.Other;
                }
                else if (reader.ValueTextEquals("tool_calls"u8))
                {
                    reader.Read();
                    callIds = ReadCallIds(ref reader);
                }
                else if (reader.ValueTextEquals("function_call"u8))
                {
                    reader.Read();
                    callsFunction = reader.TokenType == JsonTokenType.StartObject;
                    reader.Skip();
                }
                else if (reader.ValueTextEquals("tool_call_id"u8))
                {
                    reader.Read();
                    resultId = reader.TokenType == JsonTokenType.String ? reader.GetString() : null;
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            var length = (int)reader.BytesConsumed - start;
            var tokens = estimator.EstimateMessage(messages.Slice(start, length));
            list.Add(new Message(start, length, role, tokens, callIds, callsFunction, resultId));
        }

        return list;
    }

    private static List<string>? ReadCallIds(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            reader.Skip();
            return null;
        }

        var ids = new List<string>();
        while (reader.Read() && reader.TokenType == JsonTokenType.StartObject)
        {
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isId = reader.ValueTextEquals("id"u8);
                reader.Read();
                if (isId && reader.TokenType == JsonTokenType.String)
                {
                    ids.Add(reader.GetString()!);
                }
                else
                {
                    reader.Skip();
                }
            }
        }

        return ids;
    }

    /// <summary>
    /// Turns, oldest first: each message alone, except that tool (and legacy function) results join the assistant
    /// message that called them. Pinned: system/developer messages, the last user message, the newest turn.
    /// </summary>
    private static List<Turn> GroupTurns(List<Message> messages)
    {
        var turns = new List<Turn>(messages.Count);
        var turnOf = new int[messages.Count];
        var callers = new Dictionary<string, int>(StringComparer.Ordinal);
        var functionCaller = -1;
        var lastUser = -1;
        for (var i = 0; i < messages.Count; i++)
        {
            var message = messages[i];
            int turn;
            if (message.Role == Role.Tool && message.ResultId is { } id && callers.TryGetValue(id, out var caller))
            {
                turn = caller;
            }
            else if (message.Role == Role.Function && functionCaller >= 0)
            {
                turn = functionCaller;
            }
            else
            {
                turn = turns.Count;
                turns.Add(new Turn { Pinned = message.Role == Role.System });
                if (message.Role == Role.Assistant)
                {
                    foreach (var callId in message.CallIds ?? [])
                    {
                        callers[callId] = turn;
                    }

                    functionCaller = message.CallsFunction ? turn : -1;
                }
            }

            turns[turn].Members.Add(i);
            turnOf[i] = turn;
            if (message.Role == Role.User)
            {
                lastUser = i;
            }
        }

        if (lastUser >= 0)
        {
            turns[turnOf[lastUser]].Pinned = true;
        }

        if (messages.Count > 0)
        {
            turns[turnOf[^1]].Pinned = true;
        }

        return turns;
    }

    private static byte[] Rebuild(ChatRequest request, ReadOnlySpan<byte> messages, List<Message> parsed, bool[] dropped)
    {
        var body = request.Body.Span;
        var range = request.MessagesRange;
        var output = new ArrayBufferWriter<byte>(body.Length);
        output.Write(body[..range.Start]);
        using (var writer = new Utf8JsonWriter(output))
        {
            writer.WriteStartArray();
            for (var i = 0; i < parsed.Count; i++)
            {
                if (!dropped[i])
                {
                    // Each message is the client's validated bytes, unchanged.
                    writer.WriteRawValue(messages.Slice(parsed[i].Start, parsed[i].Length), skipInputValidation: true);
                }
            }

            writer.WriteEndArray();
        }

        output.Write(body[range.End..]);
        return output.WrittenSpan.ToArray();
    }
}
