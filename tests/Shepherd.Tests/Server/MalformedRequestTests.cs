namespace Shepherd.Tests.Server;

using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Shepherd.Server.Http;
using Shepherd.Testing;

/// <summary>
/// The malformed-request table: every row is sent over real HTTP to a gateway with a simulated model, and must
/// come back with the exact status and OpenAI's error envelope (all four keys), never a 500 or a dropped
/// connection; after the whole table the gateway must still serve a valid request.
/// </summary>
public sealed class MalformedRequestTests(MalformedRequestTests.GatewayFixture fixture) : IClassFixture<MalformedRequestTests.GatewayFixture>
{
    /// <summary>Small, so the oversize rows stay cheap; large enough for the deep-nesting and huge-model rows.</summary>
    public const int MaxBodyBytes = 64 * 1024;

    private const string ChatPath = "/v1/chat/completions";
    private const string User = """{"role":"user","content":"hi"}""";
    private const string Messages = $$"""[{{User}}]""";

    /// <summary>One row: what to send and what must come back.</summary>
    public sealed record Row(
        string Name,
        byte[]? Body,
        int Status,
        string? Param,
        string? Code = null,
        string Method = "POST",
        string Path = ChatPath,
        string? ContentType = "application/json",
        string? Key = GatewayHost.TestMasterKey,
        bool Chunked = false,
        string? MessageContains = null,
        string? ContentEncoding = null,
        IReadOnlyList<KeyValuePair<string, string>>? Headers = null)
    {
        public override string ToString() => Name;
    }

    public static readonly IReadOnlyList<Row> Rows = BuildRows();

    public static TheoryData<string> RowNames()
    {
        var data = new TheoryData<string>();
        foreach (var row in Rows)
        {
            data.Add(row.Name);
        }

        return data;
    }

    [Fact]
    public void Table_HasAtLeastFortyRowsWithUniqueNames()
    {
        Assert.True(Rows.Count >= 40, $"only {Rows.Count} rows");
        Assert.Equal(Rows.Count, Rows.Select(r => r.Name).Distinct(StringComparer.Ordinal).Count());
    }

    [Theory]
    [MemberData(nameof(RowNames))]
    public async Task Send_MalformedRequest_ExactStatusAndOpenAIErrorEnvelope(string name)
    {
        var row = Rows.Single(r => r.Name == name);
        var failure = await SendAndCheckAsync(fixture.Gateway, row);
        Assert.True(failure is null, failure);
    }

    [Fact]
    public async Task Send_WholeTableThenValidRequest_GatewayKeepsServing()
    {
        var failures = new List<string>();
        foreach (var row in Rows)
        {
            if (await SendAndCheckAsync(fixture.Gateway, row) is { } failure)
            {
                failures.Add(failure);
            }
        }

        Assert.Empty(failures);
        await AssertServesValidRequestAsync(fixture.Gateway);
        Assert.DoesNotContain(fixture.Gateway.Logs.Lines, line => line.Contains("Unhandled", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public async Task Send_HeadersBeyondKestrelsOwnLimit_Refused431AndGatewayKeepsServing()
    {
        // Over twice the gateway's limit Kestrel refuses the head before the gateway sees it (a bare 431).
        using var client = fixture.Gateway.CreateClient(GatewayHost.TestMasterKey);
        using var request = new HttpRequestMessage(HttpMethod.Post, ChatPath) { Content = new StringContent("{}", Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("x-pad", new string('h', 3 * RequestHeadLimits.MaxHeaderBytes));

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
        await AssertServesValidRequestAsync(fixture.Gateway);
    }

    [Fact]
    public async Task Send_ValidRequest_Succeeds()
    {
        await AssertServesValidRequestAsync(fixture.Gateway);
    }

    [Fact]
    public async Task Send_GetOnChatEndpoint_405NamesTheAllowedMethod()
    {
        using var response = await fixture.Gateway.Client.GetAsync(ChatPath);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Contains("POST", response.Content.Headers.Allow);
    }

    [Theory]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/json;charset=UTF-8")]
    [InlineData("application/json; charset=\"utf-8\"")]
    [InlineData("application/vnd.api+json")]
    [InlineData(null)]
    public async Task Send_AcceptedContentTypes_Succeed(string? contentType)
    {
        using var content = new ByteArrayContent(Utf8($$"""{"model":"sim-model","messages":{{Messages}}}"""));
        if (contentType is not null)
        {
            content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }

        using var response = await fixture.Gateway.Client.PostAsync(ChatPath, content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Send_BodyAtTheLimit_AcceptedAndOneByteMore_413(bool chunked)
    {
        var core = Utf8($$"""{"model":"sim-model","messages":{{Messages}}}""");
        foreach (var (size, status) in new[] { (MaxBodyBytes, HttpStatusCode.OK), (MaxBodyBytes + 1, HttpStatusCode.RequestEntityTooLarge) })
        {
            // Trailing white space is legal JSON: pad the same request to the exact size.
            var body = core.Concat(Enumerable.Repeat((byte)' ', size - core.Length)).ToArray();
            HttpContent content = chunked ? new ChunkedContent(body) : new ByteArrayContent(body);
            content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
            using (content)
            using (var response = await fixture.Gateway.Client.PostAsync(ChatPath, content))
            {
                Assert.Equal(status, response.StatusCode);

                // The rest of an oversized body is not read: the connection is closed after the answer.
                Assert.Equal(status == HttpStatusCode.RequestEntityTooLarge, response.Headers.ConnectionClose == true);
            }
        }
    }

    [Fact]
    public async Task Send_BodyWithUtf8ByteOrderMark_Succeeds()
    {
        var body = Encoding.UTF8.GetPreamble().Concat(Utf8($$"""{"model":"sim-model","messages":{{Messages}}}""")).ToArray();
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var response = await fixture.Gateway.Client.PostAsync(ChatPath, content);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Send_ClientClosesMidBody_NoUnhandledErrorAndGatewayKeepsServing()
    {
        // Kestrel treats the client's FIN as the connection going away (no half-close in HTTP/1.1), so there may be
        // no answer to read; what matters is that the gateway logs a client problem, not a failure, and carries on.
        const string RequestId = "mid-body-close-1";
        var uri = new Uri(fixture.Gateway.BaseUrl);
        using (var socket = new System.Net.Sockets.TcpClient())
        {
            await socket.ConnectAsync(uri.Host, uri.Port);
            var stream = socket.GetStream();
            var head = $"POST {ChatPath} HTTP/1.1\r\nHost: {uri.Authority}\r\nAuthorization: Bearer {GatewayHost.TestMasterKey}\r\n" +
                       $"x-request-id: {RequestId}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\":\"sim";
            await stream.WriteAsync(Utf8(head));
            socket.Client.Shutdown(System.Net.Sockets.SocketShutdown.Send);
            try
            {
                while (await stream.ReadAsync(new byte[1024]) > 0)
                {
                }
            }
            catch (IOException)
            {
                // A reset is one of the acceptable ends.
            }
        }

        // Wait (bounded) for the request's own log line: the event itself, not a guess at how long it takes.
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        string? line;
        while ((line = fixture.Gateway.Logs.Lines.FirstOrDefault(l => l.Contains(RequestId, StringComparison.Ordinal))) is null)
        {
            await Task.Delay(20, timeout.Token);
        }

        Assert.DoesNotContain("unhandled", line, StringComparison.OrdinalIgnoreCase);
        // Depending on timing Kestrel reports the early end as an aborted request (499 client_disconnected) or as a
        // truncated body (400).
        Assert.Matches(" 499 .*error=client_disconnected| 400 .*error=bad_request_body", line);
        Assert.DoesNotContain(fixture.Gateway.Logs.Lines, l => l.Contains(RequestId, StringComparison.Ordinal) && l.StartsWith("Error", StringComparison.Ordinal));
        await AssertServesValidRequestAsync(fixture.Gateway);
    }

    private static async Task AssertServesValidRequestAsync(GatewayHost gateway)
    {
        using var response = await gateway.Client.PostAsync(ChatPath, new StringContent(
            $$"""{"model":"sim-model","messages":{{Messages}},"max_tokens":5}""", Encoding.UTF8, "application/json"));
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode}: {text}");
        using var json = JsonDocument.Parse(text);
        Assert.Equal("chat.completion", json.RootElement.GetProperty("object").GetString());

        using var streamed = await gateway.Client.PostAsync(ChatPath, new StringContent(
            $$"""{"model":"sim-alias","stream":true,"messages":{{Messages}}}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.OK, streamed.StatusCode);
        Assert.Equal("[DONE]", Sse.DataEvents(await streamed.Content.ReadAsStringAsync())[^1]);
    }

    /// <returns>null when the row got the expected answer, else a description of what differed.</returns>
    private static async Task<string?> SendAndCheckAsync(GatewayHost gateway, Row row)
    {
        using var client = gateway.CreateClient(null);
        using var request = new HttpRequestMessage(new HttpMethod(row.Method), row.Path);
        if (row.Key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", row.Key);
        }

        foreach (var (name, value) in row.Headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        if (row.Body is not null)
        {
            HttpContent content = row.Chunked ? new ChunkedContent(row.Body) : new ByteArrayContent(row.Body);
            if (row.ContentType is not null)
            {
                content.Headers.ContentType = MediaTypeHeaderValue.Parse(row.ContentType);
            }

            if (row.ContentEncoding is not null)
            {
                content.Headers.ContentEncoding.Add(row.ContentEncoding);
            }

            request.Content = content;
        }

        HttpResponseMessage response;
        try
        {
            response = await client.SendAsync(request);
        }
        catch (HttpRequestException ex)
        {
            return $"{row.Name}: no response ({ex.Message})";
        }

        using (response)
        {
            var text = await response.Content.ReadAsStringAsync();
            var status = (int)response.StatusCode;
            if (status != row.Status)
            {
                return $"{row.Name}: status {status}, expected {row.Status}: {text}";
            }

            if (response.Content.Headers.ContentType?.MediaType != "application/json")
            {
                return $"{row.Name}: content type {response.Content.Headers.ContentType}";
            }

            JsonElement error;
            try
            {
                using var json = JsonDocument.Parse(text);
                error = json.RootElement.GetProperty("error").Clone();
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
            {
                return $"{row.Name}: not an OpenAI error envelope: {text}";
            }

            foreach (var key in new[] { "message", "type", "param", "code" })
            {
                if (!error.TryGetProperty(key, out _))
                {
                    return $"{row.Name}: error.{key} is missing: {text}";
                }
            }

            if (error.GetProperty("message").ValueKind != JsonValueKind.String || error.GetProperty("message").GetString()!.Length == 0 ||
                error.GetProperty("type").ValueKind != JsonValueKind.String)
            {
                return $"{row.Name}: message and type must be non-empty strings: {text}";
            }

            var param = error.GetProperty("param");
            var actualParam = param.ValueKind == JsonValueKind.Null ? null : param.GetString();
            if (actualParam != row.Param)
            {
                return $"{row.Name}: param '{actualParam}', expected '{row.Param}': {text}";
            }

            var code = error.GetProperty("code");
            if (row.Code is not null && (code.ValueKind != JsonValueKind.String || code.GetString() != row.Code))
            {
                return $"{row.Name}: code {code}, expected '{row.Code}': {text}";
            }

            if (row.MessageContains is not null && !error.GetProperty("message").GetString()!.Contains(row.MessageContains, StringComparison.Ordinal))
            {
                return $"{row.Name}: message does not mention '{row.MessageContains}': {text}";
            }

            if (!response.Headers.Contains("x-request-id"))
            {
                return $"{row.Name}: no x-request-id header";
            }

            return null;
        }
    }

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>A valid request with <paramref name="extra"/> added as top-level fields.</summary>
    private static byte[] With(string extra) => Utf8($$"""{"model":"sim-model","messages":{{Messages}},{{extra}}}""");

    /// <summary>A request whose messages array is <paramref name="messages"/>.</summary>
    private static byte[] WithMessages(string messages) => Utf8($$"""{"model":"sim-model","messages":{{messages}}}""");

    private static Row Bad(string name, byte[] body, string? param, string? code = null) => new(name, body, 400, param, code);

    private static List<Row> BuildRows()
    {
        const string InvalidJson = "invalid_json";
        const string InvalidType = "invalid_type";
        const string InvalidValue = "invalid_value";
        const string Missing = "missing_required_parameter";
        var valid = $$"""{"model":"sim-model","messages":{{Messages}}}""";
        var tool = """{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}""";
        var invalidUtf8 = Utf8(valid).ToList();
        invalidUtf8.InsertRange(invalidUtf8.IndexOf((byte)'h'), new byte[] { 0xC3, 0x28, 0xFF });

        return
        [
            // Not JSON, or not the JSON we accept.
            Bad("json_truncated", Utf8(valid[..^3]), null, InvalidJson),
            Bad("json_trailing_garbage", Utf8(valid + " xyz"), null, InvalidJson),
            Bad("json_two_objects", Utf8("{}{}"), null, InvalidJson),
            Bad("json_two_requests", Utf8(valid + valid), null, InvalidJson),
            Bad("json_line_comment", Utf8($$"""{"model":"sim-model", // hi{{"\n"}}"messages":{{Messages}}}"""), null, InvalidJson),
            Bad("json_block_comment", Utf8($$"""{"model":"sim-model", /* hi */ "messages":{{Messages}}}"""), null, InvalidJson),
            Bad("json_trailing_comma_object", Utf8($$"""{"model":"sim-model","messages":{{Messages}},}"""), null, InvalidJson),
            Bad("json_trailing_comma_array", WithMessages($"[{User},]"), null, InvalidJson),
            Bad("json_nan", With("\"temperature\":NaN"), null, InvalidJson),
            Bad("json_infinity", With("\"temperature\":Infinity"), null, InvalidJson),
            Bad("json_single_quotes", Utf8("{'model':'sim-model','messages':[{'role':'user','content':'hi'}]}"), null, InvalidJson),
            Bad("json_unquoted_key", Utf8($$"""{model:"sim-model","messages":{{Messages}}}"""), null, InvalidJson),
            Bad("json_bad_escape", Utf8($$"""{"model":"sim\qmodel","messages":{{Messages}}}"""), null, InvalidJson),
            Bad("json_control_char_in_string", Utf8($$"""{"model":"sim{{"\u0001"}}model","messages":{{Messages}}}"""), null, InvalidJson),
            Bad("json_lone_surrogate_escape", WithMessages("""[{"role":"user","content":"half a pair: \ud83d"}]"""), null, InvalidJson),
            Bad("body_empty", [], null, InvalidJson),
            Bad("body_whitespace", Utf8(" \r\n\t "), null, InvalidJson),
            Bad("body_array", Utf8("[]"), null, InvalidJson),
            Bad("body_string", Utf8("\"hello\""), null, InvalidJson),
            Bad("body_number", Utf8("42"), null, InvalidJson),
            Bad("body_null", Utf8("null"), null, InvalidJson),
            Bad("body_invalid_utf8", [.. invalidUtf8], null, InvalidJson),
            Bad("body_utf16", Encoding.Unicode.GetBytes(valid), null, InvalidJson),
            Bad("deep_nesting_10000_arrays", With($"\"x\":{new string('[', 10_000)}{new string(']', 10_000)}"), null, InvalidJson),
            Bad("deep_nesting_body", Utf8(new string('[', 10_000) + new string(']', 10_000)), null, InvalidJson),
            Bad("deep_nesting_objects", With($"\"x\":{string.Concat(Enumerable.Repeat("{\"a\":", 5_000))}1{new string('}', 5_000)}"), null, InvalidJson),

            // model
            Bad("model_missing", Utf8($$"""{"messages":{{Messages}}}"""), "model", Missing),
            Bad("model_number", Utf8($$"""{"model":42,"messages":{{Messages}}}"""), "model", InvalidType),
            Bad("model_null", Utf8($$"""{"model":null,"messages":{{Messages}}}"""), "model", InvalidType),
            Bad("model_object", Utf8($$"""{"model":{"name":"sim-model"},"messages":{{Messages}}}"""), "model", InvalidType),
            Bad("model_empty", Utf8($$"""{"model":"","messages":{{Messages}}}"""), "model", InvalidValue),
            Bad("model_blank", Utf8($$"""{"model":"   ","messages":{{Messages}}}"""), "model", InvalidValue),
            Bad("model_control_characters", Utf8($$"""{"model":"sim-model\n[fake log line]","messages":{{Messages}}}"""), "model", InvalidValue),
            Bad("model_huge", Utf8($$"""{"model":"{{new string('m', 20_000)}}","messages":{{Messages}}}"""), "model", InvalidValue),
            Bad("model_duplicate_key", Utf8($$"""{"model":"sim-model","model":"other","messages":{{Messages}}}"""), "model"),
            Bad("model_duplicate_key_escaped", Utf8($$"""{"model":"sim-model","mod\u0065l":"other","messages":{{Messages}}}"""), "model"),
            new("model_unknown", Utf8($$"""{"model":"sim-modle","messages":{{Messages}}}"""), 404, "model", "model_not_found", MessageContains: "'sim-model'"),

            // messages
            Bad("messages_missing", Utf8("""{"model":"sim-model"}"""), "messages", Missing),
            Bad("messages_string", WithMessages("\"hi\""), "messages", InvalidType),
            Bad("messages_object", WithMessages(User), "messages", InvalidType),
            Bad("messages_null", WithMessages("null"), "messages", InvalidType),
            Bad("messages_empty", WithMessages("[]"), "messages", "empty_array"),
            Bad("message_not_object", WithMessages("[\"hi\"]"), "messages[0]", InvalidType),
            Bad("message_role_unknown", WithMessages("""[{"role":"wizard","content":"hi"}]"""), "messages[0].role", InvalidValue),
            Bad("message_role_missing", WithMessages("""[{"content":"hi"}]"""), "messages[0].role", Missing),
            Bad("message_role_number", WithMessages("""[{"role":1,"content":"hi"}]"""), "messages[0].role", InvalidType),
            Bad("message_user_without_content", WithMessages($$"""[{{User}},{"role":"user"}]"""), "messages[1].content", Missing),
            Bad("message_user_null_content", WithMessages("""[{"role":"user","content":null}]"""), "messages[0].content", Missing),
            Bad("message_content_number", WithMessages("""[{"role":"user","content":5}]"""), "messages[0].content", InvalidType),
            Bad("message_content_empty_parts", WithMessages("""[{"role":"user","content":[]}]"""), "messages[0].content", "empty_array"),
            Bad("message_assistant_without_content", WithMessages($$"""[{{User}},{"role":"assistant"}]"""), "messages[1].content", Missing),
            Bad("message_tool_without_tool_call_id", WithMessages($$"""[{{User}},{"role":"tool","content":"18C"}]"""), "messages[1].tool_call_id", Missing),
            Bad("message_tool_calls_on_user", WithMessages("""[{"role":"user","content":"hi","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]"""), "messages[0].tool_calls", InvalidValue),
            Bad("message_tool_call_arguments_object", WithMessages("[" + User + """,{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":{}}}]}]"""), "messages[1].tool_calls[0].function.arguments", InvalidType),
            Bad("content_part_unknown_type", WithMessages("""[{"role":"user","content":[{"type":"video","video":{}}]}]"""), "messages[0].content[0].type", InvalidValue),
            Bad("content_part_missing_type", WithMessages("""[{"role":"user","content":[{"text":"hi"}]}]"""), "messages[0].content[0].type", Missing),
            Bad("content_part_not_object", WithMessages("""[{"role":"user","content":["hi"]}]"""), "messages[0].content[0]", InvalidType),
            Bad("content_part_text_without_text", WithMessages("""[{"role":"user","content":[{"type":"text"}]}]"""), "messages[0].content[0].text", Missing),
            Bad("content_part_image_url_without_url", WithMessages("""[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"detail":"low"}}]}]"""), "messages[0].content[1].image_url.url", Missing),
            Bad("content_part_image_url_bad_scheme", WithMessages("""[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://example.com/a.png"}}]}]"""), "messages[0].content[0].image_url.url", InvalidValue),
            Bad("content_part_image_url_javascript", WithMessages("""[{"role":"user","content":[{"type":"image_url","image_url":{"url":"javascript:alert(1)"}}]}]"""), "messages[0].content[0].image_url.url", InvalidValue),
            Bad("content_part_image_detail_bad", WithMessages("""[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png","detail":"ultra"}}]}]"""), "messages[0].content[0].image_url.detail", InvalidValue),
            Bad("content_part_image_in_system", WithMessages("""[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]},{"role":"user","content":"hi"}]"""), "messages[0].content", InvalidValue),

            // Wrong types for the sampling and control parameters.
            Bad("temperature_string", With("\"temperature\":\"hot\""), "temperature", InvalidType),
            Bad("top_p_string", With("\"top_p\":\"0.5\""), "top_p", InvalidType),
            Bad("n_string", With("\"n\":\"2\""), "n", InvalidType),
            Bad("max_tokens_string", With("\"max_tokens\":\"10\""), "max_tokens", InvalidType),
            Bad("max_completion_tokens_bool", With("\"max_completion_tokens\":true"), "max_completion_tokens", InvalidType),
            Bad("stream_string", With("\"stream\":\"yes\""), "stream", InvalidType),
            Bad("stream_number", With("\"stream\":1"), "stream", InvalidType),
            Bad("stop_number", With("\"stop\":5"), "stop", InvalidType),
            Bad("stop_array_of_numbers", With("\"stop\":[1]"), "stop[0]", InvalidType),
            Bad("seed_string", With("\"seed\":\"7\""), "seed", InvalidType),
            Bad("seed_fraction", With("\"seed\":1.5"), "seed", InvalidType),
            Bad("seed_too_big", With("\"seed\":99999999999999999999"), "seed", InvalidValue),
            Bad("tools_object", With($"\"tools\":{tool}"), "tools", InvalidType),
            Bad("tools_item_string", With("\"tools\":[\"get_weather\"]"), "tools[0]", InvalidType),
            Bad("tool_choice_number", With("\"tool_choice\":5"), "tool_choice", InvalidType),
            Bad("tool_choice_unknown_string", With("\"tool_choice\":\"always\""), "tool_choice", InvalidValue),
            Bad("response_format_string", With("\"response_format\":\"json\""), "response_format", InvalidType),
            Bad("response_format_unknown_type", With("\"response_format\":{\"type\":\"yaml\"}"), "response_format.type", InvalidValue),
            Bad("metadata_array", With("\"metadata\":[1]"), "metadata", InvalidType),
            Bad("metadata_value_number", With("\"metadata\":{\"a\":1}"), "metadata.a", InvalidType),
            Bad("user_number", With("\"user\":5"), "user", InvalidType),
            Bad("stream_options_string", With("\"stream\":true,\"stream_options\":\"usage\""), "stream_options", InvalidType),
            Bad("stream_options_include_usage_string", With("\"stream\":true,\"stream_options\":{\"include_usage\":\"yes\"}"), "stream_options.include_usage", InvalidType),
            Bad("logprobs_string", With("\"logprobs\":\"true\""), "logprobs", InvalidType),
            Bad("parallel_tool_calls_string", With("\"parallel_tool_calls\":\"no\""), "parallel_tool_calls", InvalidType),
            Bad("logit_bias_array", With("\"logit_bias\":[1]"), "logit_bias", InvalidType),

            // Out of range.
            Bad("temperature_above_2", With("\"temperature\":2.5"), "temperature", InvalidValue),
            Bad("temperature_negative", With("\"temperature\":-0.1"), "temperature", InvalidValue),
            Bad("temperature_1e400", With("\"temperature\":1e400"), "temperature", InvalidValue),
            Bad("top_p_above_1", With("\"top_p\":1.5"), "top_p", InvalidValue),
            Bad("n_zero", With("\"n\":0"), "n", InvalidValue),
            Bad("n_1000", With("\"n\":1000"), "n", InvalidValue),
            Bad("max_tokens_zero", With("\"max_tokens\":0"), "max_tokens", InvalidValue),
            Bad("max_tokens_negative", With("\"max_tokens\":-5"), "max_tokens", InvalidValue),
            Bad("max_tokens_1e30", With("\"max_tokens\":1e30"), "max_tokens", InvalidValue),
            Bad("max_tokens_fraction", With("\"max_tokens\":2.5"), "max_tokens", InvalidType),
            Bad("presence_penalty_3", With("\"presence_penalty\":3"), "presence_penalty", InvalidValue),
            Bad("frequency_penalty_minus_3", With("\"frequency_penalty\":-3"), "frequency_penalty", InvalidValue),
            Bad("logit_bias_out_of_range", With("\"logit_bias\":{\"50256\":101}"), "logit_bias", InvalidValue),
            Bad("top_logprobs_21", With("\"logprobs\":true,\"top_logprobs\":21"), "top_logprobs", InvalidValue),
            Bad("stop_five_sequences", With("\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), "stop", "array_above_max_length"),
            Bad("metadata_17_pairs", With("\"metadata\":{" + string.Join(",", Enumerable.Range(0, 17).Select(i => $"\"k{i}\":\"v\"")) + "}"), "metadata", InvalidValue),

            // Cross-field rules and tools.
            Bad("top_logprobs_without_logprobs", With("\"top_logprobs\":3"), "top_logprobs", InvalidValue),
            Bad("tool_choice_undeclared_function", With($"\"tools\":[{tool}],\"tool_choice\":{{\"type\":\"function\",\"function\":{{\"name\":\"get_time\"}}}}"), "tool_choice", InvalidValue),
            Bad("tool_choice_function_without_tools", With("\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}"), "tool_choice", InvalidValue),
            Bad("tool_choice_required_without_tools", With("\"tool_choice\":\"required\""), "tool_choice", InvalidValue),
            Bad("tool_name_invalid_pattern", With("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get weather!\"}}]"), "tools[0].function.name", InvalidValue),
            Bad("tool_name_too_long", With($"\"tools\":[{{\"type\":\"function\",\"function\":{{\"name\":\"{new string('f', 65)}\"}}}}]"), "tools[0].function.name", InvalidValue),
            Bad("tool_name_missing", With("\"tools\":[{\"type\":\"function\",\"function\":{\"description\":\"x\"}}]"), "tools[0].function.name", Missing),
            Bad("tool_names_duplicate", With($"\"tools\":[{tool},{tool}]"), "tools[1].function.name", InvalidValue),
            Bad("tool_type_unknown", With("\"tools\":[{\"type\":\"retrieval\"}]"), "tools[0].type", InvalidValue),
            Bad("tool_parameters_string", With("\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":\"{}\"}}]"), "tools[0].function.parameters", InvalidType),
            Bad("response_format_json_schema_without_name", With("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"type\":\"object\"}}}"), "response_format.json_schema.name", Missing),
            Bad("response_format_json_schema_missing", With("\"response_format\":{\"type\":\"json_schema\"}"), "response_format.json_schema", Missing),
            Bad("stream_options_without_stream", With("\"stream_options\":{\"include_usage\":true}"), "stream_options", InvalidValue),
            Bad("stream_options_with_stream_false", With("\"stream\":false,\"stream_options\":{\"include_usage\":true}"), "stream_options", InvalidValue),

            // Transport: size, content type, method, URL, key.
            new("oversize_content_length", With($"\"x\":\"{new string('a', MaxBodyBytes)}\""), 413, null, "request_too_large"),
            new("oversize_chunked", With($"\"x\":\"{new string('a', MaxBodyBytes + 4096)}\""), 413, null, "request_too_large", Chunked: true),
            new("content_type_text_plain", Utf8(valid), 415, null, "unsupported_media_type", ContentType: "text/plain"),
            new("content_type_form", Utf8("model=sim-model"), 415, null, "unsupported_media_type", ContentType: "application/x-www-form-urlencoded"),
            new("content_type_json_utf16", Encoding.Unicode.GetBytes(valid), 415, null, "unsupported_media_type", ContentType: "application/json; charset=utf-16"),
            new("content_encoding_gzip", Utf8(valid), 415, null, "unsupported_media_type", ContentEncoding: "gzip"),
            new("method_get", null, 405, null, "method_not_allowed", Method: "GET"),
            new("method_put", Utf8(valid), 405, null, "method_not_allowed", Method: "PUT"),
            new("unknown_url", Utf8(valid), 404, null, "unknown_url", Path: "/v1/chat/completion"),
            new("unknown_url_root", null, 404, null, "unknown_url", Method: "GET", Path: "/nope"),
            new("key_missing", Utf8(valid), 401, null, "invalid_api_key", Key: null),
            new("key_invalid", Utf8(valid), 401, null, "invalid_api_key", Key: "sk-wrong"),
            new("key_missing_on_bad_body", Utf8("{"), 401, null, "invalid_api_key", Key: null),
            new("headers_too_large", Utf8(valid), 431, null, "headers_too_large", Headers: [new("x-pad", new string('h', 40_000))]),
            new("headers_too_many", Utf8(valid), 431, null, "headers_too_large",
                Headers: Enumerable.Range(0, 150).Select(i => new KeyValuePair<string, string>($"x-h{i}", "v")).ToList()),
            new("url_too_long", Utf8(valid), 414, null, "url_too_long", Path: ChatPath + "?q=" + new string('u', 10_000)),
        ];
    }

    /// <summary>A body sent with <c>Transfer-Encoding: chunked</c> (no Content-Length), in small pieces.</summary>
    private sealed class ChunkedContent(byte[] bytes) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            for (var offset = 0; offset < bytes.Length; offset += 8192)
            {
                await stream.WriteAsync(bytes.AsMemory(offset, Math.Min(8192, bytes.Length - offset)));
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = -1;
            return false;
        }
    }

    /// <summary>One gateway for the whole table: a simulated model, a small body limit.</summary>
    public sealed class GatewayFixture : IAsyncLifetime
    {
        public GatewayHost Gateway { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            Gateway = await GatewayHost.StartAsync($"""
                server:
                  max_body_bytes: {MaxBodyBytes}
                providers:
                  - name: sim
                    type: simulated
                models:
                  - name: sim-model
                    aliases: [ sim-alias ]
                    deployments:
                      - provider: sim
                """);
        }

        public async Task DisposeAsync() => await Gateway.DisposeAsync();
    }
}
