namespace Shepherd.Server.Streaming;

using System.Buffers;
using System.Text.Json;
using Shepherd.Chat;
using Shepherd.Providers.Shared;

/// <summary>
/// The final usage chunk the gateway writes itself when a client asked for usage (<c>stream_options.include_usage</c>)
/// and the stream ended cleanly without the provider reporting any: the gateway's count, marked
/// <c>"shepherd":{"estimated":true}</c>, so the client still gets the usage and the cost that were recorded.
/// </summary>
public static class EstimatedUsageChunk
{
    /// <summary>The <c>id</c>, <c>created</c> and <c>model</c> of a stream's chunks, read from its first one.</summary>
    public readonly record struct Identity(string? Id, long Created, string? Model);

    /// <summary>Reads the top-level <c>id</c>, <c>created</c> and <c>model</c> of a chunk (whatever is missing stays empty).</summary>
    public static Identity Read(ReadOnlySpan<byte> chunk)
    {
        string? id = null, model = null;
        long created = 0;
        try
        {
            var reader = new Utf8JsonReader(chunk);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return default;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("id"u8) && reader.Read() && reader.TokenType == JsonTokenType.String)
                {
                    id = reader.GetString();
                }
                else if (reader.ValueTextEquals("model"u8) && reader.Read() && reader.TokenType == JsonTokenType.String)
                {
                    model = reader.GetString();
                }
                else if (reader.ValueTextEquals("created"u8) && reader.Read() && reader.TokenType == JsonTokenType.Number)
                {
                    reader.TryGetInt64(out created);
                }
                else
                {
                    if (reader.TokenType == JsonTokenType.PropertyName)
                    {
                        reader.Read();
                    }

                    reader.Skip();
                }
            }
        }
        catch (JsonException)
        {
            // A chunk the gateway relays is valid JSON; whatever could be read is used.
        }

        return new Identity(id, created, model);
    }

    /// <summary>An OpenAI usage chunk (<c>choices: []</c>) with the estimated usage and what it cost.</summary>
    public static byte[] Write(Identity identity, Usage usage, decimal cost, string requestId)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("id"u8, identity.Id ?? "chatcmpl-" + requestId);
            w.WriteString("object"u8, "chat.completion.chunk"u8);
            w.WriteNumber("created"u8, identity.Created);
            w.WriteString("model"u8, identity.Model ?? string.Empty);
            w.WriteStartArray("choices"u8);
            w.WriteEndArray();
            OpenAIOutput.WriteUsage(w, usage);
            w.WriteStartObject("shepherd"u8);
            w.WriteNumber("cost_usd"u8, cost);
            w.WriteString("request_id"u8, requestId);
            w.WriteBoolean("estimated"u8, true);
            w.WriteEndObject();
            w.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }
}
