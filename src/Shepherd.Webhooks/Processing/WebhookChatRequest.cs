namespace Shepherd.Webhooks.Processing;

using System.Buffers;
using System.Text.Json;
using Shepherd.Chat;

/// <summary>Renders a rule for one event into a Chat Completions request body.</summary>
/// <remarks>The rendered texts only ever enter the request as JSON string values written by <see cref="Utf8JsonWriter"/>:
/// whatever an event holds (quotes, braces, "role" fields), it cannot change the request's structure.</remarks>
public static class WebhookChatRequest
{
    public static byte[] Build(WebhookRule rule, JsonElement evt)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        using (var w = new Utf8JsonWriter(buffer, JsonDefaults.Writer))
        {
            w.WriteStartObject();
            w.WriteString("model"u8, rule.Model);
            w.WriteStartArray("messages"u8);
            if (rule.System is { } system)
            {
                w.WriteStartObject();
                w.WriteString("role"u8, "system"u8);
                w.WriteString("content"u8, system.Render(evt));
                w.WriteEndObject();
            }

            w.WriteStartObject();
            w.WriteString("role"u8, "user"u8);
            w.WriteString("content"u8, rule.User is { } user ? user.Render(evt) : WebhookTemplate.Serialize(evt));
            w.WriteEndObject();
            w.WriteEndArray();
            if (rule.Temperature is { } temperature)
            {
                w.WriteNumber("temperature"u8, temperature);
            }

            if (rule.MaxTokens is { } maxTokens)
            {
                w.WriteNumber("max_tokens"u8, maxTokens);
            }

            w.WriteBoolean("stream"u8, false);
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
