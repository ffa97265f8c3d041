namespace Shepherd.Server.Endpoints;

using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Shepherd.Chat;
using Shepherd.Errors;
using Shepherd.Routing;
using Shepherd.Routing.Rules;
using Shepherd.Server.Hosting;
using Shepherd.Server.Http;

/// <summary><c>GET /v1/models</c> and <c>GET /v1/models/{id}</c> in OpenAI's list format.</summary>
public sealed class ModelsEndpoints(GatewayServices gateway)
{
    public async Task ListAsync(HttpContext context)
    {
        if (!await AuthenticateAsync(context))
        {
            return;
        }

        await WriteJsonAsync(context, w =>
        {
            w.WriteStartObject();
            w.WriteString("object"u8, "list"u8);
            w.WriteStartArray("data"u8);
            var key = RequestContext.Get(context).Caller?.Key;
            foreach (var model in gateway.Catalog.Models)
            {
                if (key is not null && !key.Models.Allows(model))
                {
                    continue;
                }

                WriteModel(w, model);
            }

            foreach (var router in gateway.Router.Models)
            {
                if (key is null || key.Models.AllowsVirtualModel(router.Name))
                {
                    WriteVirtualModel(w, router);
                }
            }

            w.WriteEndArray();
            w.WriteEndObject();
        });
    }

    public async Task GetAsync(HttpContext context, string id)
    {
        if (!await AuthenticateAsync(context))
        {
            return;
        }

        var caller = RequestContext.Get(context).Caller;
        if (gateway.Router.TryGet(id, out var router) && caller?.Key?.Models.AllowsVirtualModel(router.Name) != false)
        {
            await WriteJsonAsync(context, w => WriteVirtualModel(w, router));
            return;
        }

        if (!gateway.Catalog.TryResolve(id, out var model) || caller?.Key?.Models.Allows(model) == false)
        {
            var shown = id.Length > 100 ? id[..100] + "…" : id;
            await ErrorResponses.WriteAsync(context, GatewayError.NotFound($"The model '{shown}' does not exist or you do not have access to it.", "model_not_found") with { Param = "model" });
            return;
        }

        await WriteJsonAsync(context, w => WriteModel(w, model));
    }

    private async Task<bool> AuthenticateAsync(HttpContext context)
    {
        var caller = gateway.Authenticator.Authenticate(Auth.BearerToken.From(context.Request));
        if (caller.Error is not null)
        {
            await ErrorResponses.WriteAsync(context, caller.Error);
            return false;
        }

        RequestContext.Get(context).Caller = caller.Caller;
        if (caller.Caller!.Key is { } key && !key.AllowsAddress(gateway.ClientAddress.Resolve(context)))
        {
            await ErrorResponses.WriteAsync(context, Limits.Admission.CheckAddress(caller.Caller, null)!);
            return false;
        }

        return true;
    }

    private static void WriteModel(Utf8JsonWriter w, CatalogModel model)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, model.Name);
        w.WriteString("object"u8, "model"u8);
        w.WriteNumber("created"u8, model.Created);
        w.WriteString("owned_by"u8, model.OwnedBy);
        if (model.Config.ContextWindow is { } window)
        {
            w.WriteNumber("context_window"u8, window);
        }

        if (model.Config.MaxOutputTokens is { } maxOutput)
        {
            w.WriteNumber("max_output_tokens"u8, maxOutput);
        }

        if (model.Config.Aliases.Count > 0)
        {
            w.WriteStartArray("aliases"u8);
            foreach (var alias in model.Config.Aliases)
            {
                w.WriteStringValue(alias);
            }

            w.WriteEndArray();
        }

        w.WriteEndObject();
    }

    /// <summary>A virtual model (router): owned by the gateway; its rules pick a configured model per request.</summary>
    private static void WriteVirtualModel(Utf8JsonWriter w, VirtualModel router)
    {
        w.WriteStartObject();
        w.WriteString("id"u8, router.Name);
        w.WriteString("object"u8, "model"u8);
        w.WriteNumber("created"u8, router.Created);
        w.WriteString("owned_by"u8, "shepherd"u8);
        w.WriteEndObject();
    }

    internal static async Task WriteJsonAsync(HttpContext context, Action<Utf8JsonWriter> write, int status = 200)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(buffer, JsonDefaults.Writer))
        {
            write(writer);
        }

        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        context.Response.ContentLength = buffer.WrittenCount;
        await context.Response.Body.WriteAsync(buffer.WrittenMemory, context.RequestAborted);
    }
}
